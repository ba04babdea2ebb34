import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type {
  BodyChunkTransform,
  Exchange,
  ExchangeFilter,
  ExchangeSummary,
  ImmediateResponse,
} from '@httpmesh/mitm-core';
import type {
  ChainBodyDecision,
  ChainExchange,
  PluginMetricsSnapshot,
  PluginProcessSpec,
  PluginSupervisor,
  SupervisorOptions,
} from '@httpmesh/plugin-sdk';
// Light entry points: validating plugin rules and converting headers load no gRPC code; the supervisor
// (and with it grpc-js) is imported only once a configuration names a plugin.
import { parsePluginConfig } from '@httpmesh/plugin-sdk/config';
import { headerListFromRecord, headerListToRecord } from '@httpmesh/plugin-sdk/headers';
import type { PluginConfig as RuleSyncPluginConfig } from '@httpmesh/rule-sync';
import type { Logger } from 'pino';
import { RulesFileError } from './errors.js';

/** One plugin as the rules file (or rule-sync) configures it: a PluginConfig plus how to run it. */
export type SidecarPluginSpec = PluginProcessSpec;

export const DEFAULT_PLUGIN_TIMEOUT_MS = 200;
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const PLUGIN_KEYS = [
  'name',
  'address',
  'command',
  'args',
  'env',
  'cwd',
  'hosts',
  'patterns',
  'order',
  'timeoutMs',
  'failureMode',
] as const;

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function stringList(path: string, field: string, v: unknown, check?: (s: string) => string | undefined) {
  if (!Array.isArray(v)) throw new RulesFileError(path, field, 'expected a list of strings');
  return v.map((s: unknown, i) => {
    if (typeof s !== 'string' || s === '')
      throw new RulesFileError(path, `${field}[${i}]`, 'expected a non-empty string');
    const problem = check?.(s);
    if (problem !== undefined) throw new RulesFileError(path, `${field}[${i}]`, problem);
    return s;
  });
}

/**
 * Validates the rules file's `plugins` list. Every error names the field (`plugins[1].timeoutMs`).
 * Relative `command` paths containing a slash and relative `cwd` are resolved against `baseDir`
 * (the rules file's directory), like every other path in a config file.
 */
export function validatePlugins(raw: unknown, path: string, baseDir?: string): SidecarPluginSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new RulesFileError(path, 'plugins', 'expected a list');
  const seen = new Set<string>();
  return raw.map((item: unknown, i): SidecarPluginSpec => {
    const field = `plugins[${i}]`;
    if (!isMapping(item))
      throw new RulesFileError(path, field, 'expected a mapping with name and command or address');
    for (const key of Object.keys(item)) {
      if (!(PLUGIN_KEYS as readonly string[]).includes(key)) {
        throw new RulesFileError(
          path,
          `${field}.${key}`,
          `unknown field (allowed: ${PLUGIN_KEYS.join(', ')})`,
        );
      }
    }
    const name = item['name'];
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new RulesFileError(path, `${field}.name`, `expected a name matching ${NAME_RE.source}`);
    }
    if (seen.has(name)) throw new RulesFileError(path, `${field}.name`, `plugin ${name} is configured twice`);
    seen.add(name);
    const command = item['command'];
    const address = item['address'];
    if ((command === undefined) === (address === undefined)) {
      throw new RulesFileError(
        path,
        field,
        'give exactly one of command (to run) or address (to connect to)',
      );
    }
    const spec: {
      -readonly [K in keyof SidecarPluginSpec]: SidecarPluginSpec[K];
    } = { name, order: 0, failureMode: 'open', timeoutMs: DEFAULT_PLUGIN_TIMEOUT_MS };
    if (command !== undefined) {
      if (typeof command !== 'string' || command === '') {
        throw new RulesFileError(path, `${field}.command`, 'expected a non-empty string');
      }
      spec.command =
        baseDir !== undefined && command.includes('/') && !isAbsolute(command)
          ? resolvePath(baseDir, command)
          : command;
      if (item['args'] !== undefined) spec.args = stringList(path, `${field}.args`, item['args']);
      const env = item['env'];
      if (env !== undefined) {
        if (!isMapping(env)) throw new RulesFileError(path, `${field}.env`, 'expected a mapping of strings');
        for (const [k, v] of Object.entries(env)) {
          if (typeof v !== 'string') throw new RulesFileError(path, `${field}.env.${k}`, 'expected a string');
        }
        spec.env = env as Record<string, string>;
      }
      const cwd = item['cwd'];
      if (cwd !== undefined) {
        if (typeof cwd !== 'string' || cwd === '')
          throw new RulesFileError(path, `${field}.cwd`, 'expected a directory');
        spec.cwd = baseDir !== undefined && !isAbsolute(cwd) ? resolvePath(baseDir, cwd) : cwd;
      }
    } else {
      for (const key of ['args', 'env', 'cwd']) {
        if (item[key] !== undefined) throw new RulesFileError(path, `${field}.${key}`, 'only with command');
      }
      if (typeof address !== 'string' || !validAddress(address)) {
        throw new RulesFileError(path, `${field}.address`, 'expected unix:/path, /path or host:port');
      }
      spec.address = address;
    }
    if (item['hosts'] !== undefined) {
      spec.hosts = stringList(path, `${field}.hosts`, item['hosts'], (h) =>
        h.includes('/') || h.includes(' ') ? 'expected a host name or *.suffix' : undefined,
      );
    }
    if (item['patterns'] !== undefined) {
      spec.patterns = stringList(path, `${field}.patterns`, item['patterns'], (p) =>
        p.startsWith('/') ? undefined : 'expected a path pattern starting with / (url-matcher syntax)',
      );
    }
    const order = item['order'];
    if (typeof order !== 'number' || !Number.isInteger(order)) {
      throw new RulesFileError(path, `${field}.order`, 'expected an integer');
    }
    spec.order = order;
    const timeout = item['timeoutMs'];
    if (timeout !== undefined) {
      if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0 || timeout > 60_000) {
        throw new RulesFileError(path, `${field}.timeoutMs`, 'expected milliseconds in (0, 60000]');
      }
      spec.timeoutMs = timeout;
    }
    const mode = item['failureMode'];
    if (mode !== 'open' && mode !== 'closed') {
      throw new RulesFileError(
        path,
        `${field}.failureMode`,
        `expected open or closed, got ${JSON.stringify(mode)}`,
      );
    }
    spec.failureMode = mode;
    // Hosts and patterns are compiled the way the chain compiles them (url-matcher syntax, conflicts).
    try {
      parsePluginConfig(spec);
    } catch (e) {
      const message = (e as Error).message;
      const at = message.includes('pattern')
        ? `${field}.patterns`
        : message.includes('host')
          ? `${field}.hosts`
          : field;
      throw new RulesFileError(path, at, message);
    }
    return spec;
  });
}

function validAddress(address: string): boolean {
  if (address.startsWith('unix:')) return address.length > 6 && address[5] === '/';
  if (address.startsWith('/')) return true;
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return false;
  const port = Number(address.slice(colon + 1));
  return Number.isInteger(port) && port > 0 && port < 65536;
}

/**
 * rule-sync `PluginConfig` -> sidecar spec. Control-plane plugins are external (an address the sidecar
 * connects to): the control plane cannot tell a node what to execute. FAIL_OPEN/FAIL_CLOSED map to
 * open/closed; `timeout_ms = 0` means the 200 ms default. Throws RulesFileError naming the field.
 */
export function pluginSpecFromResource(config: RuleSyncPluginConfig, index = 0): SidecarPluginSpec {
  const [spec] = validatePlugins([pluginRawFromResource(config)], 'control-plane');
  if (spec === undefined) throw new RulesFileError('control-plane', `plugins[${index}]`, 'empty');
  return spec;
}

/** rule-sync `PluginConfig` -> the rules file's `plugins[]` item shape (validated by validatePlugins). */
export function pluginRawFromResource(config: RuleSyncPluginConfig): Record<string, unknown> {
  const failureMode = config.failureMode === 1 ? 'open' : config.failureMode === 2 ? 'closed' : undefined;
  const raw: Record<string, unknown> = {
    name: config.name,
    address: config.address,
    order: config.order,
    timeoutMs: config.timeoutMs === 0 ? DEFAULT_PLUGIN_TIMEOUT_MS : config.timeoutMs,
    failureMode: failureMode ?? `FailureMode(${config.failureMode})`,
  };
  if (config.hosts.length > 0) raw['hosts'] = config.hosts;
  if (config.patterns.length > 0) raw['patterns'] = config.patterns;
  return raw;
}

/** True when two specs differ only in how the process is run (an upgrade, not a re-configuration). */
function sameChainSettings(a: SidecarPluginSpec, b: SidecarPluginSpec): boolean {
  return (
    a.name === b.name &&
    a.order === b.order &&
    a.timeoutMs === b.timeoutMs &&
    a.failureMode === b.failureMode &&
    JSON.stringify(a.hosts ?? null) === JSON.stringify(b.hosts ?? null) &&
    JSON.stringify(a.patterns ?? null) === JSON.stringify(b.patterns ?? null) &&
    (a.command === undefined) === (b.command === undefined)
  );
}

function sameProcess(a: SidecarPluginSpec, b: SidecarPluginSpec): boolean {
  return (
    a.command === b.command &&
    a.address === b.address &&
    a.cwd === b.cwd &&
    JSON.stringify(a.args ?? []) === JSON.stringify(b.args ?? []) &&
    JSON.stringify(a.env ?? {}) === JSON.stringify(b.env ?? {})
  );
}

interface Generation {
  readonly supervisor: PluginSupervisor;
  readonly specs: readonly SidecarPluginSpec[];
  inFlight: number;
  onIdle: (() => void) | undefined;
}

const kPluginExchange = Symbol('httpmesh.sidecar.plugins');
interface PluginLocal {
  readonly chain: ChainExchange;
  readonly generation: Generation;
}

export interface SidecarPluginsOptions {
  readonly supervisor?: SupervisorOptions;
  /** How long a replaced set of plugins may keep serving its in-flight exchanges (default 30 s). */
  readonly drainTimeoutMs?: number;
}

/**
 * The sidecar's plugin host: one PluginSupervisor for the configured plugins, an ExchangeFilter that runs
 * their chain per exchange, and Prometheus text for their metrics. `apply()` takes a new configuration:
 * a change in how a plugin is run is a zero-downtime `supervisor.upgrade`; any other change starts a new
 * supervisor beside the old one, switches new exchanges to it and stops the old one once its exchanges end.
 */
export class SidecarPlugins {
  readonly #log: Logger;
  readonly #options: SidecarPluginsOptions;
  #current: Generation | undefined;
  #applying: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Restarts/upgrades/errors of supervisors already replaced, so counters never go backwards. */
  readonly #retired = new Map<string, PluginMetricsSnapshot[]>();

  constructor(log: Logger, options: SidecarPluginsOptions = {}) {
    this.#log = log;
    this.#options = options;
  }

  /** Plugins in force (empty before the first apply). */
  get specs(): readonly SidecarPluginSpec[] {
    return this.#current?.specs ?? [];
  }

  get supervisor(): PluginSupervisor | undefined {
    return this.#current?.supervisor;
  }

  /** Applies a configuration; serialised, so rapid rules edits apply in order. */
  apply(specs: readonly SidecarPluginSpec[]): Promise<void> {
    this.#clearRetry();
    const next = this.#applying.then(() => this.#apply(specs));
    this.#applying = next.catch(() => {});
    // A configuration that cannot start (a plugin not up yet, e.g. an external one still starting) is
    // retried with backoff until it starts or a newer configuration arrives; the plugins in force serve.
    next.catch(() => this.#scheduleRetry(specs));
    return next;
  }

  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelayMs = 500;

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #scheduleRetry(specs: readonly SidecarPluginSpec[]): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(delay * 2, 30_000);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      const next = this.#applying.then(() => this.#apply(specs));
      this.#applying = next.catch(() => {});
      next.then(
        () => {
          this.#retryDelayMs = 500;
        },
        (e: Error & { code?: string }) => {
          this.#log.warn(
            { event: 'plugins.retry_failed', code: e.code, err: e.message, delayMs: this.#retryDelayMs },
            'plugins still not applied',
          );
          this.#scheduleRetry(specs);
        },
      );
    }, delay);
    this.#retryTimer.unref();
  }

  async #apply(specs: readonly SidecarPluginSpec[]): Promise<void> {
    if (this.#stopped) return;
    const current = this.#current;
    if (current === undefined && specs.length === 0) return;
    if (
      current !== undefined &&
      current.specs.length === specs.length &&
      specs.every((s) => {
        const old = current.specs.find((o) => o.name === s.name);
        return old !== undefined && sameChainSettings(old, s);
      })
    ) {
      // Same chain: upgrade only the plugins whose process changed, one at a time.
      const changed = specs.filter(
        (s) => !sameProcess(current.specs.find((o) => o.name === s.name) as SidecarPluginSpec, s),
      );
      for (const spec of changed) {
        const change =
          spec.command === undefined
            ? { address: spec.address as string }
            : {
                command: spec.command,
                args: spec.args ?? [],
                env: spec.env ?? {},
                ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
              };
        await current.supervisor.upgrade(spec.name, change);
        this.#log.info({ event: 'plugin.upgraded', plugin: spec.name }, 'plugin upgraded');
      }
      (current as { specs: readonly SidecarPluginSpec[] }).specs = specs;
      return;
    }
    let next: Generation | undefined;
    if (specs.length > 0) {
      const { PluginSupervisor } = await import('@httpmesh/plugin-sdk');
      const supervisor = new PluginSupervisor(specs, this.#options.supervisor ?? {});
      this.#watch(supervisor);
      try {
        await supervisor.start();
      } catch (error) {
        await supervisor.stop();
        throw error;
      }
      next = { supervisor, specs, inFlight: 0, onIdle: undefined };
    }
    this.#current = next;
    this.#log.info({ event: 'plugins.applied', plugins: specs.map((s) => s.name) }, 'plugins applied');
    if (current !== undefined) void this.#retire(current);
  }

  #watch(supervisor: PluginSupervisor): void {
    supervisor.on('exit', (name: string, code: number | null, signal: string | null) =>
      this.#log.warn({ event: 'plugin.exited', plugin: name, code, signal }, 'plugin process exited'),
    );
    supervisor.on('restart', (name: string, delayMs: number) =>
      this.#log.info({ event: 'plugin.restarting', plugin: name, delayMs }, 'restarting plugin'),
    );
    supervisor.on('failure', (error: Error & { code?: string; plugin?: string }) =>
      this.#log.debug(
        { event: 'plugin.failure', plugin: error.plugin, code: error.code, err: error.message },
        'plugin failure',
      ),
    );
  }

  async #retire(old: Generation): Promise<void> {
    if (old.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#options.drainTimeoutMs ?? 30_000);
        old.onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const [name, snapshot] of Object.entries(old.supervisor.metrics())) {
      const list = this.#retired.get(name) ?? [];
      list.push(snapshot);
      this.#retired.set(name, list);
    }
    await old.supervisor.stop();
  }

  /** Stops every plugin process. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clearRetry();
    await this.#applying;
    const current = this.#current;
    this.#current = undefined;
    await current?.supervisor.stop();
  }

  /**
   * The proxy filter: request headers (continue / mutate / immediate response), response headers
   * (continue / mutate; an immediate response there cannot be honoured, see README), completion event.
   * Exchanges no plugin applies to stay on mitm-core's synchronous path.
   */
  filter(): ExchangeFilter {
    return {
      name: 'plugins',
      onRequestHead: (exchange) => this.#onRequestHead(exchange),
      onResponseHead: (exchange) => this.#onResponseHead(exchange),
      onRequestTrailers: (exchange) => this.#onRequestTrailers(exchange),
      onResponseTrailers: (exchange) => this.#onResponseTrailers(exchange),
      onComplete: (exchange, summary) => this.#onComplete(exchange, summary),
    };
  }

  #onRequestTrailers(exchange: Exchange): Promise<void> | undefined {
    const local = exchange.locals.get(kPluginExchange) as PluginLocal | undefined;
    if (
      local === undefined ||
      !wantsPhase(local.generation.supervisor, local.chain.plugins, 'requestTrailers')
    )
      return undefined;
    return local.chain.onRequestTrailers(headerListFromRecord(exchange.requestTrailers ?? {})).then((d) => {
      // The request head and body have gone upstream: an immediate response (or a fail-closed failure)
      // cannot replace the exchange any more, so it fails (500 HTTPMESH_FILTER_FAILED) instead of
      // forwarding trailers a plugin refused.
      if (d.kind === 'respond') throw new Error(`plugin refused the request trailers (status ${d.status})`);
      if (d.kind === 'mutate') exchange.requestTrailers = headerListToRecord(d.headers);
    });
  }

  #onResponseTrailers(exchange: Exchange): Promise<void> | undefined {
    const local = exchange.locals.get(kPluginExchange) as PluginLocal | undefined;
    if (
      local === undefined ||
      !wantsPhase(local.generation.supervisor, local.chain.plugins, 'responseTrailers')
    )
      return undefined;
    return local.chain.onResponseTrailers(headerListFromRecord(exchange.responseTrailers ?? {})).then((d) => {
      // The body has gone out: an immediate response (or a fail-closed failure) can no longer replace
      // it, so the response is broken off instead of ending cleanly with trailers a plugin refused.
      if (d.kind === 'respond') throw new Error(`plugin refused the response trailers (status ${d.status})`);
      if (d.kind === 'mutate') exchange.responseTrailers = headerListToRecord(d.headers);
    });
  }

  #onRequestHead(exchange: Exchange): Promise<ImmediateResponse | undefined> | undefined {
    const generation = this.#current;
    if (generation === undefined) return undefined;
    const host = hostOf(exchange.authority || exchange.upstream.host);
    const chain = generation.supervisor.chain;
    if (chain.select(host, exchange.path).length === 0) return undefined;
    const ex = chain.startExchange({ host, path: exchange.path });
    generation.inFlight++;
    exchange.locals.set(kPluginExchange, { chain: ex, generation } satisfies PluginLocal);
    return ex
      .onRequestHeaders({
        method: exchange.method,
        scheme: exchange.clientTls || exchange.upstream.protocol === 'https:' ? 'https' : 'http',
        authority: exchange.authority,
        path: exchange.path,
        headers: headerListFromRecord(exchange.requestHeaders),
      })
      .then(async (d) => {
        if (d.kind === 'respond') return immediate(d.status, d.headers, d.body);
        if (d.kind === 'mutate') exchange.requestHeaders = headerListToRecord(d.headers);
        const limit = bodyLimit(generation.supervisor, ex.plugins, 'requestBody');
        if (limit === undefined) {
          // Only STREAMED plugins (if any): chunks go to them as they pass, nothing is buffered.
          if (streamedOnly(generation.supervisor, ex.plugins, 'requestBody'))
            exchange.transformRequestBody(chunkTransform((c, end) => ex.onRequestBodyChunk(c, end)));
          return undefined;
        }
        // Some plugin asked for the request body (BUFFERED): buffer it under the largest cap asked for
        // (beyond it mitm-core answers 413 HTTPMESH_BODY_TOO_LARGE), then forward the replacement a plugin
        // made, or its immediate response. A request without a body is not sent to the body phase.
        const body = await exchange.readRequestBody(limit);
        if (body.length === 0) return undefined;
        const b = await ex.onRequestBody(body);
        if (b.kind === 'respond') return immediate(b.status, b.headers, b.body);
        if (b.kind === 'mutate') exchange.setRequestBody(b.body);
        return undefined;
      });
  }

  #onResponseHead(exchange: Exchange): Promise<ImmediateResponse | undefined> | undefined {
    const local = exchange.locals.get(kPluginExchange) as PluginLocal | undefined;
    if (local === undefined) return undefined;
    return local.chain
      .onResponseHeaders({
        status: exchange.status,
        headers: headerListFromRecord(exchange.responseHeaders ?? {}),
      })
      .then(async (d) => {
        if (d.kind === 'respond') return immediate(d.status, d.headers, d.body);
        if (d.kind === 'mutate') exchange.responseHeaders = headerListToRecord(d.headers);
        const limit = bodyLimit(local.generation.supervisor, local.chain.plugins, 'responseBody');
        if (limit === undefined) {
          if (streamedOnly(local.generation.supervisor, local.chain.plugins, 'responseBody'))
            exchange.transformResponseBody(
              chunkTransform((c, end) => local.chain.onResponseBodyChunk(c, end)),
            );
          return undefined;
        }
        // Some plugin asked for the response body: buffer it (over the cap mitm-core answers 502
        // HTTPMESH_RESPONSE_BODY_TOO_LARGE) and answer with the replacement when a plugin changed it.
        const body = await exchange.readResponseBody(limit);
        const b = await local.chain.onResponseBody(body);
        if (b.kind === 'respond') return immediate(b.status, b.headers, b.body);
        if (b.kind !== 'mutate') return undefined;
        const headers = { ...(exchange.responseHeaders ?? {}) };
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        return { status: exchange.status, headers, body: b.body };
      });
  }

  #onComplete(exchange: Exchange, summary: ExchangeSummary): void {
    const local = exchange.locals.get(kPluginExchange) as PluginLocal | undefined;
    if (local === undefined) return;
    const end = summary.timings.end ?? performance.now();
    local.chain.complete({
      status: summary.status,
      totalMs: end - summary.timings.start,
      ...(summary.timings.upstreamConnect === undefined
        ? {}
        : { upstreamMs: end - summary.timings.upstreamConnect }),
      requestBodyBytes: summary.requestBodyBytes,
      responseBodyBytes: summary.responseBodyBytes,
      ...(summary.errorCode === undefined ? {} : { error: summary.errorCode }),
    });
    local.chain.close();
    const generation = local.generation;
    generation.inFlight--;
    if (generation.inFlight === 0 && generation.onIdle !== undefined) generation.onIdle();
  }

  /** Per-plugin state for the admin endpoint (`/plugins`). */
  status(): Record<string, unknown>[] {
    const generation = this.#current;
    if (generation === undefined) return [];
    const metrics = generation.supervisor.metrics();
    return generation.specs.map((s) => ({
      name: s.name,
      state: generation.supervisor.state(s.name),
      pid: generation.supervisor.pid(s.name) ?? null,
      version: generation.supervisor.client(s.name)?.info.version ?? null,
      address: s.address ?? null,
      command: s.command ?? null,
      order: s.order,
      failureMode: s.failureMode,
      timeoutMs: s.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS,
      metrics: metrics[s.name] ?? null,
    }));
  }

  /** Prometheus text for every plugin (current supervisor plus the counts of replaced ones). */
  prometheusText(): string {
    const snapshots = new Map<string, PluginMetricsSnapshot[]>();
    for (const [name, list] of this.#retired) snapshots.set(name, [...list]);
    const current = this.#current?.supervisor.metrics() ?? {};
    for (const [name, snap] of Object.entries(current)) {
      const list = snapshots.get(name) ?? [];
      list.push(snap);
      snapshots.set(name, list);
    }
    if (snapshots.size === 0) return '';
    const lines: string[] = [];
    const counter = (metric: string, help: string, value: (s: PluginMetricsSnapshot) => number) => {
      lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`);
      for (const [name, list] of snapshots) lines.push(`${metric}{plugin="${name}"} ${sum(list, value)}`);
    };
    counter(
      'httpmesh_plugin_requests_total',
      'Messages sent to the plugin that awaited a reply.',
      (s) => s.requests,
    );
    counter(
      'httpmesh_plugin_observed_total',
      'Messages sent without waiting (observe-only, completion).',
      (s) => s.observed,
    );
    counter(
      'httpmesh_plugin_timeouts_total',
      'Messages the plugin did not answer in time.',
      (s) => s.timeouts,
    );
    counter(
      'httpmesh_plugin_restarts_total',
      'Plugin process restarts (or reconnects of external plugins).',
      (s) => s.restarts,
    );
    counter('httpmesh_plugin_upgrades_total', 'Zero-downtime plugin upgrades.', (s) => s.upgrades);
    counter(
      'httpmesh_plugin_health_check_failures_total',
      'Failed plugin health checks.',
      (s) => s.healthCheckFailures,
    );
    lines.push(
      '# HELP httpmesh_plugin_errors_total Plugin failures by error code.',
      '# TYPE httpmesh_plugin_errors_total counter',
    );
    for (const [name, list] of snapshots) {
      const byCode = new Map<string, number>();
      for (const s of list)
        for (const [code, n] of Object.entries(s.errors)) byCode.set(code, (byCode.get(code) ?? 0) + n);
      for (const [code, n] of byCode)
        lines.push(`httpmesh_plugin_errors_total{plugin="${name}",code="${code}"} ${n}`);
    }
    lines.push(
      '# HELP httpmesh_plugin_latency_milliseconds Plugin round trip per message.',
      '# TYPE httpmesh_plugin_latency_milliseconds histogram',
    );
    for (const [name, list] of snapshots) {
      const first = list[0] as PluginMetricsSnapshot;
      const bounds = first.latency.bucketsMs;
      for (let i = 0; i < bounds.length; i++) {
        const n = sum(list, (s) => s.latency.counts[i] ?? 0);
        lines.push(`httpmesh_plugin_latency_milliseconds_bucket{plugin="${name}",le="${bounds[i]}"} ${n}`);
      }
      const count = sum(list, (s) => s.latency.count);
      lines.push(`httpmesh_plugin_latency_milliseconds_bucket{plugin="${name}",le="+Inf"} ${count}`);
      lines.push(
        `httpmesh_plugin_latency_milliseconds_sum{plugin="${name}"} ${sum(list, (s) => s.latency.sumMs)}`,
      );
      lines.push(`httpmesh_plugin_latency_milliseconds_count{plugin="${name}"} ${count}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** `/metrics`: the mesh metrics followed by the plugin metrics. */
  metricsHandler(text: () => Promise<string>): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      text().then(
        (mesh) => {
          const body = mesh + this.prometheusText();
          res.writeHead(200, {
            'content-type': 'text/plain; version=0.0.4; charset=utf-8',
            'content-length': Buffer.byteLength(body),
          });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) =>
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`# metrics collection failed: ${String(err)}\n`),
      );
    };
  }
}

/** True when some plugin of this exchange declared the phase (nothing is sent otherwise). */
function wantsPhase(
  supervisor: PluginSupervisor,
  names: readonly string[],
  phase: 'requestTrailers' | 'responseTrailers',
): boolean {
  for (const name of names) if (supervisor.client(name)?.wants(phase) === true) return true;
  return false;
}

/**
 * A STREAMED body chunk through the chain: the replacement a plugin made, or the chunk unchanged. The head
 * has already gone (request: upstream, response: client), so an immediate response or a fail-closed failure
 * cannot be answered any more: it aborts the exchange instead (request: the client gets an error status;
 * response: the response is broken off).
 */
function chunkTransform(
  run: (chunk: Buffer, end: boolean) => Promise<ChainBodyDecision>,
): BodyChunkTransform {
  return (chunk, end) =>
    run(chunk, end).then((d) => {
      if (d.kind === 'respond')
        throw new PluginStreamAbortedError(
          d.headers.find(([n]) => n === 'x-httpmesh-error')?.[1] ?? `immediate response ${d.status}`,
        );
      return d.kind === 'mutate' ? d.body : undefined;
    });
}

/** A plugin stopped a STREAMED body (immediate response or fail-closed failure mid-stream). */
export class PluginStreamAbortedError extends Error {
  override readonly name = 'PluginStreamAbortedError';
  readonly code = 'HTTPMESH_PLUGIN_STREAM_ABORTED';
  constructor(reason: string) {
    super(`a plugin stopped the streamed body: ${reason}`);
  }
}

/** True when some plugin wants this body phase and every one that does wants it STREAMED. */
function streamedOnly(
  supervisor: PluginSupervisor,
  names: readonly string[],
  phase: 'requestBody' | 'responseBody',
): boolean {
  let streamed = false;
  for (const name of names) {
    const client = supervisor.client(name);
    if (client === undefined || !client.wants(phase)) continue;
    const mode = client.bodyDelivery(phase)?.mode;
    if (mode === 'streamed') streamed = true;
    else if (mode === 'buffered') return false;
  }
  return streamed;
}

/** Largest body of this phase a BUFFERED plugin of this exchange wants (undefined: none wants it buffered). */
function bodyLimit(
  supervisor: PluginSupervisor,
  names: readonly string[],
  phase: 'requestBody' | 'responseBody',
): number | undefined {
  let limit: number | undefined;
  for (const name of names) {
    const client = supervisor.client(name);
    if (client === undefined || !client.wants(phase)) continue;
    const delivery = client.bodyDelivery(phase);
    if (delivery === undefined || delivery.mode !== 'buffered') continue;
    const max = delivery.maxBytes;
    limit = limit === undefined ? max : Math.max(limit, max);
  }
  return limit;
}

function sum(list: readonly PluginMetricsSnapshot[], value: (s: PluginMetricsSnapshot) => number): number {
  let total = 0;
  for (const s of list) total += value(s);
  return total;
}

/** Host without port (`api.example.com:8443` -> `api.example.com`, `[::1]:80` -> `::1`). */
function hostOf(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(1, end);
  }
  const colon = authority.indexOf(':');
  return colon < 0 ? authority : authority.slice(0, colon);
}

function immediate(
  status: number,
  headers: readonly (readonly [string, string])[],
  body: Buffer,
): ImmediateResponse {
  return { status, headers: headerListToRecord(headers), body };
}
