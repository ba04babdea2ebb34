import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PluginChain } from './chain.js';
import type { PluginConfig } from './config.js';
import { PluginClient, type PluginClientOptions } from './client.js';
import { PluginConfigError, type PluginError, PluginStartError } from './errors.js';
import { PluginMetrics, type PluginMetricsSnapshot } from './metrics.js';

/**
 * How to run one plugin, plus its chain settings. With `command` the supervisor runs the process;
 * without it, `address` must name a plugin someone else runs (another container), which the
 * supervisor only connects to, health-checks and reconnects.
 */
export interface PluginProcessSpec extends PluginConfig {
  readonly command?: string;
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /**
   * Base path of the plugin's Unix socket; each generation gets `<base>.<n>` so an upgrade can run
   * old and new side by side. Default: `<socketDir>/<name>.sock.<n>`. Passed as HTTPMESH_PLUGIN_SOCKET.
   */
  readonly socketPath?: string;
}

/** What an upgrade may change (`address` for an external plugin's new instance). */
export type PluginUpgrade = Partial<Pick<PluginProcessSpec, 'command' | 'args' | 'env' | 'cwd' | 'address'>>;

export interface SupervisorOptions {
  /** Directory for default socket paths (default: a fresh private temp dir, removed on stop). */
  readonly socketDir?: string;
  readonly healthIntervalMs?: number;
  readonly healthTimeoutMs?: number;
  /** Consecutive failed health checks before the process is killed and restarted (default 3). */
  readonly unhealthyThreshold?: number;
  /** Time for a new process to answer the handshake and health check (default 10 s). */
  readonly startTimeoutMs?: number;
  /** Restart backoff: initialMs * 2^attempt, capped at maxMs; attempt resets after stableMs up. */
  readonly restartBackoff?: {
    readonly initialMs?: number;
    readonly maxMs?: number;
    readonly stableMs?: number;
  };
  /** Upgrade: how long in-flight exchanges may keep the old version alive (default 30 s). */
  readonly drainTimeoutMs?: number;
  /** SIGTERM grace before SIGKILL when stopping a process (default 5 s). */
  readonly stopGraceMs?: number;
  /** Extra client options (reply/body limits) for every plugin. */
  readonly client?: Pick<PluginClientOptions, 'maxReplyBodyBytes' | 'defaultMaxBodyBytes'>;
}

export type PluginState = 'starting' | 'ready' | 'restarting' | 'stopped';

interface Instance {
  readonly generation: number;
  /** Undefined for an external plugin. */
  readonly child: ChildProcess | undefined;
  /** Our socket file, removed when the process exits; undefined for an external plugin. */
  readonly socket: string | undefined;
  readonly startedAt: number;
  /** Resolves when the process exits, or when an external plugin is declared lost. */
  readonly exited: Promise<void>;
  readonly markLost: () => void;
  client: PluginClient | undefined;
  retiring: boolean;
}

interface Managed {
  spec: PluginProcessSpec;
  readonly metrics: PluginMetrics;
  current: Instance | undefined;
  generation: number;
  attempt: number;
  healthFailures: number;
  restartTimer: NodeJS.Timeout | undefined;
  state: PluginState;
  upgrading: boolean;
  output: string;
}

const OUTPUT_TAIL = 4096;

/**
 * Starts plugin processes (or connects to external ones), health-checks them, restarts crashed ones with backoff, upgrades them
 * without dropping exchanges, and keeps per-plugin metrics. `chain` routes exchanges to the
 * current process of each plugin.
 *
 * Events: `ready` (name, generation), `exit` (name, code, signal), `restart` (name, delayMs),
 * `upgraded` (name, generation), `failure` (PluginError).
 */
export class PluginSupervisor extends EventEmitter {
  readonly chain: PluginChain;
  private readonly plugins = new Map<string, Managed>();
  private readonly options: SupervisorOptions;
  private readonly socketDir: string;
  private readonly ownsSocketDir: boolean;
  private healthTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(specs: readonly PluginProcessSpec[], options: SupervisorOptions = {}) {
    super();
    for (const spec of specs) {
      const hasCommand = typeof spec.command === 'string' && spec.command !== '';
      if (!hasCommand && (typeof spec.address !== 'string' || spec.address === '')) {
        throw new PluginConfigError(
          `plugin ${spec.name}: a command (to run) or an address (to connect to) is required`,
          spec.name,
        );
      }
      if (spec.command !== undefined && !hasCommand) {
        throw new PluginConfigError(`plugin ${spec.name}: command must be a non-empty string`, spec.name);
      }
    }
    // Validates names, orders, timeouts and failure modes.
    this.chain = new PluginChain(specs, (name) => this.client(name));
    this.options = options;
    this.ownsSocketDir = options.socketDir === undefined;
    this.socketDir = options.socketDir ?? mkdtempSync(join(tmpdir(), 'httpmesh-plugins-'));
    for (const spec of specs) {
      this.plugins.set(spec.name, {
        spec,
        metrics: new PluginMetrics(spec.name),
        current: undefined,
        generation: 0,
        attempt: 0,
        healthFailures: 0,
        restartTimer: undefined,
        state: 'stopped',
        upgrading: false,
        output: '',
      });
    }
  }

  /** Starts every plugin; resolves when all answered the handshake and a health check. */
  async start(): Promise<void> {
    await Promise.all(
      [...this.plugins.values()].map(async (m) => {
        m.state = 'starting';
        m.current = await this.launch(m, m.spec);
        m.state = 'ready';
        this.emit('ready', m.spec.name, m.current.generation);
      }),
    );
    const interval = this.options.healthIntervalMs ?? 1000;
    this.healthTimer = setInterval(() => void this.checkHealth(), interval);
    this.healthTimer.unref();
  }

  /** The client new exchanges should use, or undefined while the plugin is down. */
  client(name: string): PluginClient | undefined {
    return this.plugins.get(name)?.current?.client;
  }

  state(name: string): PluginState | undefined {
    return this.plugins.get(name)?.state;
  }

  /** PID of the current process (for operators and tests). */
  pid(name: string): number | undefined {
    return this.plugins.get(name)?.current?.child?.pid;
  }

  /** Last few KiB of the plugin's stdout/stderr across generations. */
  output(name: string): string {
    return this.plugins.get(name)?.output ?? '';
  }

  metrics(): Record<string, PluginMetricsSnapshot> {
    const out: Record<string, PluginMetricsSnapshot> = {};
    for (const [name, m] of this.plugins) out[name] = m.metrics.snapshot();
    return out;
  }

  /**
   * Zero-downtime upgrade: starts the new version beside the old one, waits for its handshake and
   * health check, switches new exchanges to it, waits for the old one's in-flight exchanges to
   * finish (up to drainTimeoutMs), then stops the old process. If the new version fails to start
   * the old one keeps serving and this rejects with HTTPMESH_PLUGIN_START_FAILED.
   */
  async upgrade(name: string, change: PluginUpgrade): Promise<void> {
    const m = this.plugins.get(name);
    if (!m) throw new PluginConfigError(`no plugin named ${name}`, name);
    if (m.upgrading) throw new PluginConfigError(`plugin ${name} is already being upgraded`, name);
    m.upgrading = true;
    // The upgrade replaces a pending crash restart.
    if (m.restartTimer) {
      clearTimeout(m.restartTimer);
      m.restartTimer = undefined;
    }
    try {
      const spec: PluginProcessSpec = { ...m.spec, ...change };
      let next: Instance;
      try {
        next = await this.launch(m, spec);
      } catch (err) {
        // Down and the new version failed too: keep trying the configured one.
        if (m.current === undefined && !this.stopped && !m.restartTimer) this.scheduleRestart(m);
        throw err;
      }
      if (this.stopped) {
        next.retiring = true;
        next.client?.close();
        await this.terminate(next);
        throw new PluginConfigError(`supervisor stopped during the upgrade of ${name}`, name);
      }
      const old = m.current;
      m.spec = spec;
      m.current = next;
      m.state = 'ready';
      m.healthFailures = 0;
      m.metrics.upgrades++;
      this.emit('upgraded', name, next.generation);
      if (old) await this.retire(old);
    } finally {
      m.upgrading = false;
    }
  }

  /** Stops every plugin (in-flight exchanges get the failure mode). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    const all: Promise<void>[] = [];
    for (const m of this.plugins.values()) {
      if (m.restartTimer) clearTimeout(m.restartTimer);
      m.state = 'stopped';
      const inst = m.current;
      m.current = undefined;
      if (inst) {
        inst.retiring = true;
        inst.client?.close();
        all.push(this.terminate(inst));
      }
    }
    await Promise.all(all);
    if (this.ownsSocketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }

  private socketFor(spec: PluginProcessSpec, generation: number): string {
    return `${spec.socketPath ?? join(this.socketDir, `${spec.name}.sock`)}.${generation}`;
  }

  private async launch(m: Managed, spec: PluginProcessSpec): Promise<Instance> {
    const generation = ++m.generation;
    let markLost: () => void = () => {};
    const lost = new Promise<void>((resolve) => {
      markLost = resolve;
    });
    let child: ChildProcess | undefined;
    let socket: string | undefined;
    let exited = lost;
    let spawnError: Error | undefined;
    if (spec.command !== undefined) {
      socket = this.socketFor(spec, generation);
      const proc = spawn(spec.command, [...(spec.args ?? [])], {
        cwd: spec.cwd,
        env: { ...process.env, ...spec.env, HTTPMESH_PLUGIN_SOCKET: socket, HTTPMESH_PLUGIN_NAME: spec.name },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = proc;
      const capture = (d: Buffer): void => {
        m.output = (m.output + d.toString()).slice(-OUTPUT_TAIL);
      };
      proc.stdout?.on('data', capture);
      proc.stderr?.on('data', capture);
      exited = new Promise<void>((resolve) => {
        proc.once('error', (err) => {
          spawnError = err;
          resolve();
        });
        proc.once('exit', () => resolve());
      });
    }
    const inst: Instance = {
      generation,
      child,
      socket,
      startedAt: Date.now(),
      exited,
      markLost,
      client: undefined,
      retiring: false,
    };
    const startTimeoutMs = this.options.startTimeoutMs ?? 10_000;
    try {
      const connecting = PluginClient.connect(socket ?? (spec.address as string), {
        ...this.options.client,
        name: spec.name,
        handshakeTimeoutMs: startTimeoutMs,
        metrics: m.metrics,
        failureMode: spec.failureMode,
        onFailure: (err: PluginError) => this.emit('failure', err),
        ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      });
      const client = child
        ? await Promise.race([
            connecting,
            exited.then(() => {
              throw new Error(
                spawnError ? spawnError.message : `exited with ${child?.exitCode ?? child?.signalCode}`,
              );
            }),
          ])
        : await connecting;
      inst.client = client;
      if (client.info.name !== spec.name) {
        throw new Error(`plugin says it is ${JSON.stringify(client.info.name)}, configured as ${spec.name}`);
      }
      if (!(await client.health(this.options.healthTimeoutMs ?? 500))) throw new Error('health check failed');
    } catch (err) {
      inst.retiring = true;
      inst.client?.close();
      await this.terminate(inst);
      throw new PluginStartError(spec.name, `${(err as Error).message}\n${m.output}`, { cause: err });
    }
    // From here on, an exit (or loss) we did not ask for is a crash.
    void exited.then(() => this.onExit(m, inst));
    return inst;
  }

  private onExit(m: Managed, inst: Instance): void {
    if (inst.socket) rmSync(inst.socket, { force: true });
    if (inst.retiring || this.stopped) return;
    this.emit('exit', m.spec.name, inst.child?.exitCode ?? null, inst.child?.signalCode ?? null);
    if (m.current !== inst) return;
    m.current = undefined;
    inst.client?.close();
    const stableMs = this.options.restartBackoff?.stableMs ?? 10_000;
    if (Date.now() - inst.startedAt > stableMs) m.attempt = 0;
    this.scheduleRestart(m);
  }

  private scheduleRestart(m: Managed): void {
    if (this.stopped) return;
    m.state = 'restarting';
    const initial = this.options.restartBackoff?.initialMs ?? 100;
    const max = this.options.restartBackoff?.maxMs ?? 5000;
    const delay = Math.min(initial * 2 ** m.attempt, max);
    m.attempt++;
    this.emit('restart', m.spec.name, delay);
    m.restartTimer = setTimeout(() => {
      m.restartTimer = undefined;
      if (this.stopped) return;
      m.metrics.restarts++;
      this.launch(m, m.spec).then(
        (inst) => {
          // Stopped meanwhile, or an upgrade already brought up a replacement.
          if (this.stopped || m.current !== undefined) {
            inst.retiring = true;
            inst.client?.close();
            void this.terminate(inst);
            return;
          }
          m.current = inst;
          m.state = 'ready';
          m.healthFailures = 0;
          this.emit('ready', m.spec.name, inst.generation);
        },
        (err: PluginError) => {
          this.emit('failure', err);
          if (m.current === undefined) this.scheduleRestart(m);
        },
      );
    }, delay);
  }

  private async checkHealth(): Promise<void> {
    const threshold = this.options.unhealthyThreshold ?? 3;
    await Promise.all(
      [...this.plugins.values()].map(async (m) => {
        const inst = m.current;
        if (!inst?.client) return;
        const ok = await inst.client.health(this.options.healthTimeoutMs ?? 500);
        if (m.current !== inst) return;
        if (ok) {
          m.healthFailures = 0;
          return;
        }
        m.healthFailures++;
        m.metrics.healthCheckFailures++;
        // A hung process is killed (an external plugin is dropped); the exit handler restarts
        // (or reconnects) it with backoff.
        if (m.healthFailures >= threshold) {
          if (inst.child) inst.child.kill('SIGKILL');
          else inst.markLost();
        }
      }),
    );
  }

  private async retire(inst: Instance): Promise<void> {
    inst.retiring = true;
    if (inst.client) {
      await inst.client.drained(this.options.drainTimeoutMs ?? 30_000);
      inst.client.close();
    }
    await this.terminate(inst);
  }

  private async terminate(inst: Instance): Promise<void> {
    const child = inst.child;
    if (child === undefined) {
      inst.markLost();
      return;
    }
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs ?? 5000);
      await inst.exited;
      clearTimeout(force);
    } else {
      await inst.exited;
    }
  }
}
