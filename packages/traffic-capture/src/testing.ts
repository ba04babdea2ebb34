/**
 * `@httpmesh/traffic-capture/testing`: a throwaway two-host network for end-to-end tests of transparent
 * capture, on real kernel networking (needs root). An "upstream" namespace (one or more addresses, and a
 * dnsmasq answering the test's domains) and a "service" namespace (where capture is installed), joined by
 * a veth pair on a /24 that exists only inside the two namespaces. `remove()` takes everything away again,
 * and creation that fails half-way removes what it made before rethrowing.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestNetworkOptions {
  /** Short stem (at most 5 characters) of the namespace and interface names, e.g. `hmtc`. */
  readonly prefix: string;
  /** Makes the names unique per test process (default `process.pid % 100000`). */
  readonly id?: number;
  /** First three octets of the /24 used inside the two namespaces only, e.g. `10.203.7`. */
  readonly subnet: string;
  /** Last octets of the upstream namespace's addresses; the first one also serves DNS. */
  readonly upstreamHosts: readonly number[];
  /** Last octet of the service namespace's address. */
  readonly serviceHost: number;
  /** Domains the upstream dnsmasq answers (with their subdomains): domain -> address. */
  readonly dns: Readonly<Record<string, string>>;
  /** Where the dnsmasq configuration is written (the test's temporary directory). */
  readonly workDir: string;
}

export interface TestNetwork {
  readonly upstreamNs: string;
  readonly serviceNs: string;
  readonly upstreamIps: readonly string[];
  readonly serviceIp: string;
  /**
   * Starts a long-running process inside a namespace and resolves once its output (stdout and stderr)
   * contains `ready` or satisfies it; rejects if it exits first or is not ready within `timeoutMs`.
   * The process is killed by `remove()`.
   */
  start(
    ns: string,
    argv: readonly string[],
    ready: string | ((output: string) => boolean),
    timeoutMs?: number,
  ): Promise<ChildProcess>;
  /** Kills what `start` started, deletes both namespaces and `/etc/netns/<service ns>`; never throws. */
  remove(): Promise<void>;
}

async function sh(cmd: string, ...args: string[]): Promise<void> {
  await run(cmd, args);
}

/** Creates the two namespaces, the veth pair, the addresses and the upstream DNS. */
export async function createTestNetwork(options: TestNetworkOptions): Promise<TestNetwork> {
  if (!/^[a-z]{1,5}$/.test(options.prefix)) throw new TypeError('prefix: 1-5 lower-case letters');
  const id = options.id ?? process.pid % 100_000;
  const upstreamNs = `${options.prefix}U${id}`;
  const serviceNs = `${options.prefix}S${id}`;
  // Interface names are limited to 15 bytes: prefix (<= 5) + 1 + id (<= 5).
  const vethUpstream = `${options.prefix}u${id}`;
  const vethService = `${options.prefix}s${id}`;
  const upstreamIps = options.upstreamHosts.map((host) => `${options.subnet}.${host}`);
  const serviceIp = `${options.subnet}.${options.serviceHost}`;
  const dnsIp = upstreamIps[0];
  if (dnsIp === undefined) throw new TypeError('upstreamHosts: at least one address');
  const children: ChildProcess[] = [];

  const start: TestNetwork['start'] = (ns, argv, ready, timeoutMs = 15_000) => {
    const isReady = typeof ready === 'string' ? (output: string) => output.includes(ready) : ready;
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`not ready within ${timeoutMs} ms: ${argv.join(' ')}\n${output}`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (isReady(output)) {
          clearTimeout(timer);
          resolve(child);
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited ${code}: ${argv.join(' ')}\n${output}`));
      });
    });
  };

  const remove = async (): Promise<void> => {
    for (const child of children) child.kill('SIGKILL');
    await run('ip', ['netns', 'delete', upstreamNs]).catch(() => undefined);
    await run('ip', ['netns', 'delete', serviceNs]).catch(() => undefined);
    rmSync(`/etc/netns/${serviceNs}`, { recursive: true, force: true });
  };

  try {
    await sh('ip', 'netns', 'add', upstreamNs);
    await sh('ip', 'netns', 'add', serviceNs);
    await sh(
      'ip',
      ...['link', 'add', vethUpstream, 'netns', upstreamNs, 'type', 'veth'],
      ...['peer', 'name', vethService, 'netns', serviceNs],
    );
    for (const ip of upstreamIps)
      await sh('ip', '-n', upstreamNs, 'addr', 'add', `${ip}/24`, 'dev', vethUpstream);
    await sh('ip', '-n', serviceNs, 'addr', 'add', `${serviceIp}/24`, 'dev', vethService);
    for (const [ns, dev] of [
      [upstreamNs, vethUpstream],
      [serviceNs, vethService],
    ] as const) {
      await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      await sh('ip', '-n', ns, 'link', 'set', dev, 'up');
    }
    // The "real" DNS of this little world, in the upstream namespace.
    const dnsConf = join(options.workDir, `${upstreamNs}-dnsmasq.conf`);
    writeFileSync(
      dnsConf,
      [
        `listen-address=${dnsIp}`,
        'bind-interfaces',
        'no-resolv',
        'no-hosts',
        'log-facility=-',
        ...Object.entries(options.dns).map(([domain, ip]) => `address=/${domain}/${ip}`),
        '',
      ].join('\n'),
    );
    await start(
      upstreamNs,
      ['dnsmasq', '--keep-in-foreground', `--conf-file=${dnsConf}`, '--log-queries'],
      'started',
    );
  } catch (error) {
    await remove();
    throw error;
  }
  return { upstreamNs, serviceNs, upstreamIps, serviceIp, start, remove };
}
