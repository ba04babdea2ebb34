import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createOriginalDestinationReader, type OriginalDestinationReader } from '../src/native/index.js';
import { createMitmProxy } from '../src/proxy/proxy.js';
import {
  rawRequest,
  startHttpUpstream,
  type TestPki,
  testPki,
  type Upstream,
} from './fixtures/proxy-harness.js';

const inCi = process.env['CI'] === 'true';
const builtAddon = join(
  fileURLToPath(new URL('..', import.meta.url)),
  'build',
  'Release',
  'original_dst.node',
);
const addonBuilt = existsSync(builtAddon);

let pki: TestPki;
let upstream: Upstream;

beforeAll(async () => {
  pki = await testPki();
  upstream = await startHttpUpstream();
});

afterAll(async () => {
  await upstream.close();
});

async function viaHandleConnection(
  proxy: ReturnType<typeof createMitmProxy>,
  host: string,
): Promise<{ status: number; url: string | undefined }> {
  const server = net.createServer((socket) => proxy.handleConnection(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  try {
    const response = await rawRequest(socket, `GET /loader HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
    const url = response.status === 200 ? (JSON.parse(response.body) as { url: string }).url : undefined;
    return { status: response.status, url };
  } finally {
    socket.destroy();
    server.close();
  }
}

test.skipIf(!addonBuilt && !inCi)(
  'an addon copied beside "the binary" loads from an explicit addonPath',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'mitm-sea-'));
    try {
      const beside = join(dir, 'original_dst.node');
      copyFileSync(builtAddon, beside);
      const logged: string[] = [];
      const reader = createOriginalDestinationReader({
        addonPath: beside,
        logger: (line) => logged.push(line),
      });
      expect(reader.supported()).toBe(true);
      expect(reader.readFd(-1)).toBeNull();
      expect(logged).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('createMitmProxy({ originalDestinationReader }) is what handleConnection asks', async () => {
  const asked: net.Socket[] = [];
  const reader: OriginalDestinationReader = {
    supported: () => true,
    read(socket) {
      asked.push(socket);
      return { address: '127.0.0.1', port: upstream.port, family: 4 };
    },
    readFd: () => null,
  };
  const proxy = createMitmProxy({ ca: pki.proxyCa, originalDestinationReader: reader });
  // The Host names nothing routable: a 200 proves the reader's destination was dialled.
  const result = await viaHandleConnection(proxy, 'not-routable.invalid');
  expect(result).toEqual({ status: 200, url: '/loader' });
  expect(asked).toHaveLength(1);
  await proxy.close();
});

test('createMitmProxy({ originalDestinationAddonPath }) with a missing addon logs once and routes by Host', async () => {
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  try {
    const proxy = createMitmProxy({
      ca: pki.proxyCa,
      originalDestinationAddonPath: join(tmpdir(), 'no-such-dir-httpmesh', 'original_dst.node'),
    });
    expect(await viaHandleConnection(proxy, `127.0.0.1:${upstream.port}`)).toEqual({
      status: 200,
      url: '/loader',
    });
    expect(await viaHandleConnection(proxy, `127.0.0.1:${upstream.port}`)).toEqual({
      status: 200,
      url: '/loader',
    });
    const lines = warn.mock.calls.map((call) => String(call[0]));
    expect(lines.filter((line) => line.includes('no-such-dir-httpmesh'))).toHaveLength(1);
    expect(lines[0]).toContain('falls back to SNI/Host');
    await proxy.close();
  } finally {
    warn.mockRestore();
  }
});
