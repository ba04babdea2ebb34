import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CaptureConfig,
  type CaptureOptions,
  checkDnsUpstream,
  type InterceptDomainRule,
  interceptSuffixes,
  resolveCaptureConfig,
} from './config.js';
import { CaptureConfigError, DnsmasqStartError, DnsUpstreamError } from './errors.js';
import { mustRun, runCommand } from './exec.js';
import {
  chainNames,
  jumpRuleArgs,
  parseNameservers,
  RESOLV_MARKER,
  renderDnsmasqConf,
  renderIptablesRestore,
  renderResolvConf,
} from './render.js';

/** Options of {@link TrafficCapture}: capture options plus where and how to apply them. */
export interface TrafficCaptureOptions extends CaptureOptions {
  /**
   * A named namespace (`ip netns add NAME`) to apply to, instead of the current one. Commands then run
   * under `ip netns exec NAME` and the resolver is written to /etc/netns/NAME/resolv.conf.
   */
  netns?: string;
  /** Where generated files, the pid file and the resolv.conf backup live. Default /run/httpmesh/capture[-NETNS]. */
  stateDir?: string;
  /** Resolver dnsmasq forwards to (`IP` or `IP#port`). Default: the first nameserver of the original resolv.conf. */
  dnsUpstream?: string;
  /** Which iptables to run: `auto` (the `iptables` alternative), `nft` or `legacy`. Default auto. */
  iptables?: 'auto' | 'nft' | 'legacy';
  /** resolv.conf of the current namespace (ignored with `netns`). Default /etc/resolv.conf. */
  resolvConfPath?: string;
  /** dnsmasq executable. Default `dnsmasq` from PATH. */
  dnsmasqPath?: string;
  /** Receives one structured event per action taken, for the caller's logger. */
  onEvent?: (event: CaptureEvent) => void;
}

export interface CaptureEvent {
  readonly event: string;
  readonly [key: string]: unknown;
}

/** What is currently installed, read back from the kernel and the state directory. */
export interface CaptureStatus {
  readonly outputChain: boolean;
  readonly preroutingChain: boolean;
  readonly outputJumps: number;
  readonly preroutingJumps: number;
  readonly ipset: boolean;
  /** Pid of the running dnsmasq started by this package, or null. */
  readonly dnsmasqPid: number | null;
  readonly resolverManaged: boolean;
  /** DNS suffixes currently feeding the ipset. */
  readonly suffixes: readonly string[];
}

export interface UpdateResult {
  /** The dnsmasq configuration changed (and dnsmasq was restarted). */
  readonly changed: boolean;
  /** The ipset was flushed because a domain was removed. */
  readonly flushed: boolean;
  readonly suffixes: readonly string[];
}

interface PersistedState {
  upstream: string;
  suffixes: string[];
  /** Whether the resolver file existed before we replaced it (the backup holds its text). */
  resolvExisted: boolean;
}

const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Installs, updates and removes transparent capture for one network namespace: nat chains, the ipset,
 * a dnsmasq child (detached, so `init-net` can exit and `--remove` or a later `update` finds it by its
 * pid file) and the resolver pointed at it. Every method is idempotent.
 */
export class TrafficCapture {
  readonly config: CaptureConfig;
  readonly stateDir: string;
  readonly #options: TrafficCaptureOptions;
  readonly #prefix: readonly string[];
  readonly #iptables: string;
  readonly #iptablesRestore: string;

  constructor(options: TrafficCaptureOptions = {}) {
    this.config = resolveCaptureConfig(options);
    if (options.netns !== undefined && !NETNS_RE.test(options.netns)) {
      throw new CaptureConfigError(
        'HTTPMESH_CAPTURE_NAME_INVALID',
        'netns',
        `not a namespace name: ${options.netns}`,
      );
    }
    if (options.dnsUpstream !== undefined) checkDnsUpstream(options.dnsUpstream);
    this.#options = options;
    this.#prefix = options.netns === undefined ? [] : ['ip', 'netns', 'exec', options.netns];
    const variant = options.iptables ?? 'auto';
    const suffix = variant === 'auto' ? '' : `-${variant}`;
    this.#iptables = `iptables${suffix}`;
    this.#iptablesRestore = `iptables${suffix}-restore`;
    this.stateDir =
      options.stateDir ??
      (options.netns === undefined ? '/run/httpmesh/capture' : `/run/httpmesh/capture-${options.netns}`);
  }

  get #paths() {
    return {
      conf: join(this.stateDir, 'dnsmasq.conf'),
      pid: join(this.stateDir, 'dnsmasq.pid'),
      log: join(this.stateDir, 'dnsmasq.log'),
      state: join(this.stateDir, 'state.json'),
      resolvBackup: join(this.stateDir, 'resolv.conf.orig'),
      resolv:
        this.#options.netns === undefined
          ? (this.#options.resolvConfPath ?? '/etc/resolv.conf')
          : `/etc/netns/${this.#options.netns}/resolv.conf`,
    };
  }

  #emit(event: string, fields: Record<string, unknown> = {}): void {
    this.#options.onEvent?.({ event, ...fields });
  }

  #run(argv: readonly string[], input?: string) {
    return mustRun([...this.#prefix, ...argv], input);
  }

  #try(argv: readonly string[]) {
    return runCommand([...this.#prefix, ...argv]);
  }

  /**
   * Installs everything for the given intercept rules: ipset, dnsmasq, resolver, then the nat rules
   * (last, so nothing is redirected before the pieces it relies on exist).
   */
  async install(rules: readonly InterceptDomainRule[] = []): Promise<CaptureStatus> {
    const suffixes = interceptSuffixes(rules);
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    await this.#ensureIpset();
    const previous = await this.#readState();
    const resolvExisted = previous?.resolvExisted ?? (await readText(this.#paths.resolv)) !== null;
    const upstream = this.#options.dnsUpstream ?? previous?.upstream ?? (await this.#defaultUpstream());
    await this.#writeState({ upstream, suffixes, resolvExisted });
    // Re-installing with fewer domains must not leave their addresses redirected.
    if (previous?.suffixes.some((s) => !suffixes.includes(s))) {
      await this.#run(['ipset', 'flush', this.config.ipsetName]);
    }
    await this.#syncDnsmasq(upstream, suffixes, false);
    await this.#pointResolver(resolvExisted);
    await this.#applyIptables();
    this.#emit('capture.installed', { suffixes, upstream, netns: this.#options.netns ?? null });
    return this.status();
  }

  /**
   * Follows a change of intercept rules: regenerates the dnsmasq configuration and restarts dnsmasq
   * when it changed (SIGHUP does not re-read `ipset=` lines). When a domain was dropped the ipset is
   * flushed, since it cannot tell which addresses came from which name; addresses of domains still
   * intercepted come back on their next lookup.
   */
  async update(rules: readonly InterceptDomainRule[]): Promise<UpdateResult> {
    const suffixes = interceptSuffixes(rules);
    const state = await this.#readState();
    if (state === null) {
      await this.install(rules);
      return { changed: true, flushed: false, suffixes };
    }
    const removed = state.suffixes.some((s) => !suffixes.includes(s));
    const changed = removed || suffixes.some((s) => !state.suffixes.includes(s));
    if (!changed) return { changed: false, flushed: false, suffixes };
    await this.#writeState({ ...state, suffixes });
    if (removed) await this.#run(['ipset', 'flush', this.config.ipsetName]);
    await this.#syncDnsmasq(state.upstream, suffixes, true);
    this.#emit('capture.updated', { suffixes, flushed: removed });
    return { changed: true, flushed: removed, suffixes };
  }

  /** Removes the nat rules, stops dnsmasq, restores the resolver and destroys the ipset. */
  async remove(): Promise<void> {
    const { output, prerouting } = chainNames(this.config);
    for (const builtin of ['OUTPUT', 'PREROUTING'] as const) {
      // Bounded: each round removes one copy of the jump; a stuck delete must not spin forever.
      for (let i = 0; i < 64; i++) {
        const r = await this.#try([
          this.#iptables,
          '-w',
          '-t',
          'nat',
          '-D',
          ...jumpRuleArgs(builtin, this.config),
        ]);
        if (r.code !== 0) break;
      }
    }
    for (const chain of [output, prerouting]) {
      if ((await this.#try([this.#iptables, '-w', '-t', 'nat', '-S', chain])).code === 0) {
        await this.#run([this.#iptables, '-w', '-t', 'nat', '-F', chain]);
        await this.#run([this.#iptables, '-w', '-t', 'nat', '-X', chain]);
      }
    }
    await this.#stopDnsmasq();
    await this.#restoreResolver();
    if (await this.#ipsetExists()) await this.#run(['ipset', 'destroy', this.config.ipsetName]);
    const p = this.#paths;
    for (const file of [p.conf, p.pid, p.state, p.resolvBackup]) await rm(file, { force: true });
    this.#emit('capture.removed', { netns: this.#options.netns ?? null });
  }

  /** Reads back what is installed. */
  async status(): Promise<CaptureStatus> {
    const { output, prerouting } = chainNames(this.config);
    const saved = await this.#try([this.#iptables, '-w', '-t', 'nat', '-S']);
    const lines = saved.code === 0 ? saved.stdout.split('\n') : [];
    const count = (line: string) => lines.filter((l) => l.trim() === line).length;
    const resolv = await readText(this.#paths.resolv);
    return {
      outputChain: count(`-N ${output}`) === 1,
      preroutingChain: count(`-N ${prerouting}`) === 1,
      outputJumps: count(`-A ${jumpRuleArgs('OUTPUT', this.config).join(' ')}`),
      preroutingJumps: count(`-A ${jumpRuleArgs('PREROUTING', this.config).join(' ')}`),
      ipset: await this.#ipsetExists(),
      dnsmasqPid: await this.#runningDnsmasq(),
      resolverManaged: resolv?.startsWith(RESOLV_MARKER) ?? false,
      suffixes: (await this.#readState())?.suffixes ?? [],
    };
  }

  /** Addresses currently in the ipset. */
  async ipsetMembers(): Promise<string[]> {
    const r = await this.#run(['ipset', 'list', this.config.ipsetName, '-output', 'save']);
    const out: string[] = [];
    for (const line of r.stdout.split('\n')) {
      const parts = line.split(' ');
      if (parts[0] === 'add' && parts[2] !== undefined) out.push(parts[2]);
    }
    return out;
  }

  async #ipsetExists(): Promise<boolean> {
    return (await this.#try(['ipset', 'list', '-n', this.config.ipsetName])).code === 0;
  }

  async #ensureIpset(): Promise<void> {
    const args = ['ipset', 'create', this.config.ipsetName, 'hash:ip', 'family', 'inet'];
    if (this.config.ipsetTimeoutSeconds > 0) args.push('timeout', String(this.config.ipsetTimeoutSeconds));
    await this.#run([...args, '-exist']);
  }

  async #applyIptables(): Promise<void> {
    const has = async (builtin: 'OUTPUT' | 'PREROUTING') =>
      (await this.#try([this.#iptables, '-w', '-t', 'nat', '-C', ...jumpRuleArgs(builtin, this.config)]))
        .code === 0;
    const text = renderIptablesRestore(this.config, {
      addOutputJump: !(await has('OUTPUT')),
      addPreroutingJump: !(await has('PREROUTING')),
    });
    await this.#run([this.#iptablesRestore, '-w', '--noflush'], text);
    this.#emit('capture.iptables', { rules: text });
  }

  async #defaultUpstream(): Promise<string> {
    // After install the live file points at us; the backup holds the original.
    const candidates = [await readText(this.#paths.resolvBackup), await readText(this.#paths.resolv)];
    if (this.#options.netns !== undefined) candidates.push(await readText('/etc/resolv.conf'));
    for (const text of candidates) {
      if (text === null || text.startsWith(RESOLV_MARKER)) continue;
      const ns = parseNameservers(text).find((n) => n !== this.config.dnsListenAddress);
      if (ns !== undefined) return ns;
    }
    throw new DnsUpstreamError('no dnsUpstream given and no usable nameserver in the resolver configuration');
  }

  async #pointResolver(existed: boolean): Promise<void> {
    const p = this.#paths;
    const current = await readText(p.resolv);
    if (current?.startsWith(RESOLV_MARKER)) return;
    // Back up only a file that is not ours, so re-running install never overwrites the original.
    if (existed && current !== null) await writeFile(p.resolvBackup, current, { mode: 0o644 });
    if (this.#options.netns !== undefined)
      await mkdir(`/etc/netns/${this.#options.netns}`, { recursive: true });
    // Write in place (no rename): in containers /etc/resolv.conf is a bind mount that cannot be replaced.
    await writeFile(p.resolv, renderResolvConf(this.config, current ?? ''));
    this.#emit('capture.resolver', { path: p.resolv });
  }

  async #restoreResolver(): Promise<void> {
    const p = this.#paths;
    const state = await this.#readState();
    const current = await readText(p.resolv);
    if (current === null || !current.startsWith(RESOLV_MARKER)) return; // someone else owns it now
    const backup = await readText(p.resolvBackup);
    if (backup !== null) await writeFile(p.resolv, backup);
    else if (state?.resolvExisted !== true) {
      await rm(p.resolv, { force: true });
      if (this.#options.netns !== undefined) {
        // Only if empty: other files there belong to whoever made them.
        await rmdir(`/etc/netns/${this.#options.netns}`).catch(() => {});
      }
    }
    this.#emit('capture.resolver_restored', { path: p.resolv });
  }

  async #syncDnsmasq(upstream: string, suffixes: readonly string[], force: boolean): Promise<void> {
    const p = this.#paths;
    const text = renderDnsmasqConf(this.config, { upstream, suffixes, pidFile: p.pid });
    const previous = await readText(p.conf);
    const running = await this.#runningDnsmasq();
    if (!force && running !== null && previous === text) return;
    await writeFile(p.conf, text);
    if (running !== null) await this.#stopDnsmasq();
    await this.#startDnsmasq();
  }

  async #startDnsmasq(): Promise<void> {
    const p = this.#paths;
    await rm(p.pid, { force: true });
    const log = openSync(p.log, 'a');
    const argv = [
      ...this.#prefix,
      this.#options.dnsmasqPath ?? 'dnsmasq',
      '--keep-in-foreground',
      `--conf-file=${p.conf}`,
    ];
    let exited: string | null = null;
    try {
      const child = spawn(argv[0] ?? 'dnsmasq', argv.slice(1), {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.on('error', (e) => {
        exited = e.message;
      });
      child.on('exit', (code, signal) => {
        exited = `exit ${code ?? signal}`;
      });
      child.unref();
    } finally {
      closeSync(log);
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const pid = await this.#runningDnsmasq();
      if (pid !== null) {
        this.#emit('capture.dnsmasq_started', { pid });
        return;
      }
      if (exited !== null) break;
      await delay(20);
    }
    const tail = ((await readText(p.log)) ?? '').split('\n').slice(-5).join('\n');
    throw new DnsmasqStartError(`dnsmasq did not start (${exited ?? 'no pid file within 5 s'}): ${tail}`);
  }

  /** Pid from the pid file if that process is alive and really is our dnsmasq (pids get reused). */
  async #runningDnsmasq(): Promise<number | null> {
    const text = await readText(this.#paths.pid);
    const pid = Number(text?.trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    const cmdline = await readText(`/proc/${pid}/cmdline`);
    const stat = await readText(`/proc/${pid}/stat`);
    if (cmdline === null || stat === null) return null;
    if (/^\d+ \(.*\) Z/.test(stat)) return null;
    return cmdline.includes(`--conf-file=${this.#paths.conf}`) ? pid : null;
  }

  async #stopDnsmasq(): Promise<void> {
    const pid = await this.#runningDnsmasq();
    if (pid === null) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 5000;
    while ((await this.#runningDnsmasq()) !== null) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await delay(10);
    }
    await rm(this.#paths.pid, { force: true });
    this.#emit('capture.dnsmasq_stopped', { pid });
  }

  async #readState(): Promise<PersistedState | null> {
    const text = await readText(this.#paths.state);
    if (text === null) return null;
    try {
      return JSON.parse(text) as PersistedState;
    } catch {
      return null; // a torn write: treat as not installed, install rewrites it
    }
  }

  async #writeState(state: PersistedState): Promise<void> {
    await writeFile(this.#paths.state, `${JSON.stringify(state)}\n`, { mode: 0o600 });
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    // ESRCH: a /proc file of a process that exited while being read.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return null;
    throw e;
  }
}
