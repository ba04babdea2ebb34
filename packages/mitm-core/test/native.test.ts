import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import {
  createOriginalDestinationReader,
  getOriginalDestination,
  originalDestinationSupported,
} from '../src/native/index.js';

const inCi = process.env['CI'] === 'true';
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const addonPath = join(packageDir, 'build', 'Release', 'original_dst.node');
const addonBuilt = existsSync(addonPath);
const hasTool = (tool: string, args: string[]) => spawnSync(tool, args, { stdio: 'ignore' }).status === 0;
const isRoot = process.getuid?.() === 0;
const netnsReady =
  process.platform === 'linux' &&
  isRoot &&
  addonBuilt &&
  hasTool('ip', ['-V']) &&
  hasTool('iptables', ['--version']) &&
  hasTool('ip6tables', ['--version']);

function run(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
}

describe('SO_ORIGINAL_DST addon loader', () => {
  test.skipIf(!addonBuilt && !inCi)('the package build produced the addon and it loads', () => {
    expect(existsSync(addonPath)).toBe(true);
    expect(originalDestinationSupported()).toBe(true);
  });

  test('returns null for sockets without a usable fd and for non-socket fds', async () => {
    const reader = createOriginalDestinationReader({ logger: () => {} });
    expect(reader.readFd(-1)).toBeNull();
    expect(reader.readFd(1.5)).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), 'mitm-native-'));
    try {
      writeFileSync(join(dir, 'f'), 'x');
      const fd = openSync(join(dir, 'f'), 'r');
      try {
        // ENOTSOCK from getsockname: reported as "unknown", never thrown.
        expect(reader.readFd(fd)).toBeNull();
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const server = createServer((socket) => socket.destroy());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
      await once(client, 'connect');
      client.destroy();
      // A destroyed socket has no handle any more.
      expect(getOriginalDestination(client)).toBeNull();
    } finally {
      server.close();
    }
  });

  test('without the addon: supported() is false, reads return null, and one line is logged', async () => {
    const lines: string[] = [];
    const reader = createOriginalDestinationReader({
      addonPath: join(packageDir, 'no-such-addon.node'),
      logger: (line) => lines.push(line),
    });
    expect(reader.supported()).toBe(false);
    const server = createServer((socket) => socket.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const [accepted] = await Promise.all([
        once(server, 'connection') as Promise<[import('node:net').Socket]>,
        once(createConnection((server.address() as AddressInfo).port, '127.0.0.1'), 'connect'),
      ]);
      expect(reader.read(accepted[0])).toBeNull();
      expect(reader.read(accepted[0])).toBeNull();
      accepted[0].destroy();
    } finally {
      server.close();
    }
    expect(reader.supported()).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/SO_ORIGINAL_DST addon unavailable .*falls back to SNI\/Host/);
  });

  test('a file that is not the addon also falls back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mitm-native-'));
    try {
      const fake = join(dir, 'fake.node');
      writeFileSync(fake, 'this is not an ELF shared object');
      const lines: string[] = [];
      const reader = createOriginalDestinationReader({ addonPath: fake, logger: (line) => lines.push(line) });
      expect(reader.readFd(0)).toBeNull();
      expect(reader.supported()).toBe(false);
      expect(lines).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SO_ORIGINAL_DST through iptables REDIRECT in a network namespace', () => {
  const namespace = `httpmesh-odst-${process.pid}-${randomBytes(3).toString('hex')}`;
  let server: ChildProcess | undefined;

  function cleanup(): void {
    if (server?.pid !== undefined && server.exitCode === null) server.kill('SIGKILL');
    spawnSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore' });
  }
  afterAll(cleanup);

  /** Connects from a separate process inside the namespace and returns the server's one-line answer. */
  function connectFromNamespace(host: string, port: number): { destination: unknown; local: unknown } {
    const client = `const s=require('node:net').connect(${port},${JSON.stringify(host)});let d='';s.setEncoding('utf8');s.on('data',c=>d+=c);s.on('end',()=>{process.stdout.write(d)});s.on('error',e=>{console.error(e.message);process.exit(1)});setTimeout(()=>{console.error('timeout');process.exit(2)},10000).unref();`;
    const result = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, '-e', client], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    if (result.status !== 0) throw new Error(`client to ${host}:${port} failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as { destination: unknown; local: unknown };
  }

  test.skipIf(!netnsReady && !inCi)(
    'the addon returns the pre-REDIRECT destination for IPv4, IPv6 and dual-stack sockets',
    async () => {
      try {
        run('ip', ['netns', 'add', namespace]);
        run('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
        // Routes so that connect() to the documentation prefixes is attempted (NAT then sends it to lo); the
        // explicit source is needed because lo's addresses are host-scoped and would not be picked otherwise.
        run('ip', ['-n', namespace, 'route', 'add', '198.51.100.0/24', 'dev', 'lo', 'src', '127.0.0.1']);
        run('ip', ['-n', namespace, '-6', 'route', 'add', '2001:db8::/64', 'dev', 'lo', 'src', '::1']);

        server = spawn(
          'ip',
          ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', 'test/native-netns-server.ts'],
          {
            cwd: packageDir,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stderr = '';
        server.stderr?.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        const lines = createInterface({ input: server.stdout! });
        const ready = await Promise.race([
          once(lines, 'line').then(
            ([line]) =>
              JSON.parse(line as string) as { supported: boolean; v4: number; v6: number; dual: number },
          ),
          once(server, 'exit').then(() => {
            throw new Error(`fixture exited early: ${stderr}`);
          }),
        ]);
        expect(ready.supported).toBe(true);

        const nat = (tool: string, destination: string, port: number, toPort: number) =>
          run('ip', [
            'netns',
            'exec',
            namespace,
            tool,
            '-t',
            'nat',
            '-A',
            'OUTPUT',
            '-p',
            'tcp',
            '-d',
            destination,
            '--dport',
            String(port),
            '-j',
            'REDIRECT',
            '--to-ports',
            String(toPort),
          ]);
        nat('iptables', '198.51.100.7', 4444, ready.v4);
        nat('ip6tables', '2001:db8::7', 4446, ready.v6);
        nat('iptables', '198.51.100.8', 4445, ready.dual);

        const viaV4 = connectFromNamespace('198.51.100.7', 4444);
        expect(viaV4.destination).toEqual({ address: '198.51.100.7', port: 4444, family: 4 });
        expect(viaV4.local).toEqual({ address: '127.0.0.1', port: ready.v4 });

        const viaV6 = connectFromNamespace('2001:db8::7', 4446);
        expect(viaV6.destination).toEqual({ address: '2001:db8::7', port: 4446, family: 6 });
        expect(viaV6.local).toEqual({ address: '::1', port: ready.v6 });

        // IPv4 accepted on a dual-stack IPv6 socket: NATed by iptables, so read with SO_ORIGINAL_DST.
        const viaDual = connectFromNamespace('198.51.100.8', 4445);
        expect(viaDual.destination).toEqual({ address: '198.51.100.8', port: 4445, family: 4 });
        expect(viaDual.local).toEqual({ address: '::ffff:127.0.0.1', port: ready.dual });

        // Not redirected: conntrack's original destination is the listener itself.
        const direct = connectFromNamespace('127.0.0.1', ready.v4);
        expect(direct.destination).toEqual({ address: '127.0.0.1', port: ready.v4, family: 4 });
        expect(stderr).toBe('');
      } finally {
        cleanup();
        const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
        expect(left).not.toContain(namespace);
      }
    },
    60_000,
  );
});
