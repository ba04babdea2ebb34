import {
  applyHeaderMutation,
  type Decision,
  type ExchangeTimings,
  failureDecision,
  type PluginClient,
  type PluginExchange,
  type RequestHead,
  type RespondDecision,
  type ResponseHead,
} from './client.js';
import { PluginConfigError, type PluginError, PluginUnavailableError } from './errors.js';
import { type CompiledEntry, compileConfig, type PluginConfig } from './config.js';
import type { HeaderList } from './headers.js';

/** What the chain decided for a headers phase: `mutate` carries the resulting header list. */
export type ChainHeadersDecision =
  | { readonly kind: 'continue'; readonly failures: readonly PluginError[] }
  | { readonly kind: 'mutate'; readonly headers: HeaderList; readonly failures: readonly PluginError[] }
  | RespondDecision;

/** What the chain decided for a whole body: `mutate` carries the resulting body. */
export type ChainBodyDecision =
  | { readonly kind: 'continue'; readonly failures: readonly PluginError[] }
  | { readonly kind: 'mutate'; readonly body: Buffer; readonly failures: readonly PluginError[] }
  | RespondDecision;

/**
 * Runs the plugins that apply to a host/path, in `order`. Each plugin sees the headers as left by
 * the previous one; an immediate response (or a fail-closed failure) stops the chain.
 */
export class PluginChain {
  private readonly entries: readonly CompiledEntry[];
  private readonly resolve: (name: string) => PluginClient | undefined;

  constructor(configs: readonly PluginConfig[], resolve: (name: string) => PluginClient | undefined) {
    const seen = new Set<string>();
    const entries: CompiledEntry[] = [];
    for (const raw of configs) {
      const entry = compileConfig(raw);
      const { config } = entry;
      if (seen.has(config.name))
        throw new PluginConfigError(`plugin ${config.name} configured twice`, config.name);
      seen.add(config.name);
      entries.push(entry);
    }
    entries.sort((a, b) => a.config.order - b.config.order);
    this.entries = entries;
    this.resolve = resolve;
  }

  /**
   * Configs of the plugins that apply to this host (`Host` / `:authority`, port ignored) and path (origin
   * form, query ignored), in chain order.
   */
  select(host: string, path: string): PluginConfig[] {
    const out: PluginConfig[] = [];
    for (const e of this.entries) {
      if (e.scope === undefined || e.scope.match(path, undefined, host) !== null) out.push(e.config);
    }
    return out;
  }

  startExchange(target: { readonly host: string; readonly path: string }): ChainExchange {
    const configs = this.select(target.host, target.path);
    const steps: ChainStep[] = configs.map((config) => {
      const client = this.resolve(config.name);
      const policy =
        config.timeoutMs === undefined
          ? { failureMode: config.failureMode }
          : { failureMode: config.failureMode, timeoutMs: config.timeoutMs };
      return { config, exchange: client?.startExchange(policy) };
    });
    return new ChainExchange(steps);
  }
}

interface ChainStep {
  readonly config: PluginConfig;
  /** Undefined when the plugin is not available (not started, crashed, restarting). */
  readonly exchange: PluginExchange | undefined;
}

export class ChainExchange {
  private readonly steps: readonly ChainStep[];

  /** @internal */
  constructor(steps: readonly ChainStep[]) {
    this.steps = steps;
  }

  /** Names of the plugins in this exchange's chain, in order. */
  get plugins(): string[] {
    return this.steps.map((s) => s.config.name);
  }

  onRequestHeaders(head: RequestHead): Promise<ChainHeadersDecision> {
    return this.runHeaders(head.headers, (ex, headers) => ex.onRequestHeaders({ ...head, headers }));
  }

  onResponseHeaders(head: ResponseHead): Promise<ChainHeadersDecision> {
    return this.runHeaders(head.headers, (ex, headers) => ex.onResponseHeaders({ ...head, headers }));
  }

  /** Whole request body (already buffered by the host) through every plugin that wants it. */
  onRequestBody(body: Buffer): Promise<ChainBodyDecision> {
    return this.runBody(body, (ex, b) => ex.onRequestBody(b, true));
  }

  onResponseBody(body: Buffer): Promise<ChainBodyDecision> {
    return this.runBody(body, (ex, b) => ex.onResponseBody(b, true));
  }

  /**
   * One request body chunk (STREAMED delivery) through every plugin that wants the body, each seeing the
   * chunk as the previous one left it; `endOfStream` marks the last (possibly empty) chunk. Only for
   * chains without a BUFFERED body plugin (a buffered plugin would replace the last chunk with a whole body).
   */
  onRequestBodyChunk(chunk: Buffer, endOfStream: boolean): Promise<ChainBodyDecision> {
    return this.runBody(chunk, (ex, b) => ex.onRequestBody(b, endOfStream));
  }

  /** One response body chunk (STREAMED delivery); see `onRequestBodyChunk`. */
  onResponseBodyChunk(chunk: Buffer, endOfStream: boolean): Promise<ChainBodyDecision> {
    return this.runBody(chunk, (ex, b) => ex.onResponseBody(b, endOfStream));
  }

  /** Request trailers through every plugin that declared the phase (header mutations apply in order). */
  onRequestTrailers(trailers: HeaderList): Promise<ChainHeadersDecision> {
    return this.runHeaders(trailers, (ex, t) => ex.onRequestTrailers(t));
  }

  /** Response trailers through every plugin that declared the phase (header mutations apply in order). */
  onResponseTrailers(trailers: HeaderList): Promise<ChainHeadersDecision> {
    return this.runHeaders(trailers, (ex, t) => ex.onResponseTrailers(t));
  }

  complete(timings: ExchangeTimings): void {
    for (const s of this.steps) s.exchange?.complete(timings);
  }

  close(): void {
    for (const s of this.steps) s.exchange?.close();
  }

  private unavailable(step: ChainStep): Decision {
    return failureDecision(
      new PluginUnavailableError(step.config.name, 'not running'),
      step.config.failureMode,
    );
  }

  private async runHeaders(
    initial: HeaderList,
    call: (ex: PluginExchange, headers: HeaderList) => Promise<Decision>,
  ): Promise<ChainHeadersDecision> {
    let headers = initial;
    let changed = false;
    const failures: PluginError[] = [];
    for (const step of this.steps) {
      const d = step.exchange ? await call(step.exchange, headers) : this.unavailable(step);
      if (d.kind === 'respond') return d;
      if (d.kind === 'continue') {
        if (d.failure) failures.push(d.failure);
        continue;
      }
      if (d.headers) {
        headers = applyHeaderMutation(headers, d.headers);
        changed = true;
      }
    }
    return changed ? { kind: 'mutate', headers, failures } : { kind: 'continue', failures };
  }

  private async runBody(
    initial: Buffer,
    call: (ex: PluginExchange, body: Buffer) => Promise<Decision>,
  ): Promise<ChainBodyDecision> {
    let body = initial;
    let changed = false;
    const failures: PluginError[] = [];
    for (const step of this.steps) {
      const d = step.exchange ? await call(step.exchange, body) : this.unavailable(step);
      if (d.kind === 'respond') return d;
      if (d.kind === 'continue') {
        if (d.failure) failures.push(d.failure);
        continue;
      }
      if (d.body) {
        body = d.body;
        changed = true;
      }
    }
    return changed ? { kind: 'mutate', body, failures } : { kind: 'continue', failures };
  }
}
