import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseClientHello, peekClientHello } from '../src/proxy/clienthello.js';

/** Captures the first flight a real Node TLS client sends. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const got = once(server, 'connection');
  const client = tls.connect({ ...options, host: '127.0.0.1', port });
  client.on('error', () => {});
  const [socket] = (await got) as [net.Socket];
  let bytes = Buffer.alloc(0);
  while (parseClientHello(bytes).kind === 'incomplete') {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    bytes = Buffer.concat([bytes, chunk]);
  }
  client.destroy();
  socket.destroy();
  server.close();
  return bytes;
}

let withSni: Buffer;
let withoutSni: Buffer;

beforeAll(async () => {
  withSni = await captureClientHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] });
  withoutSni = await captureClientHello({ servername: '' });
});

describe('parseClientHello', () => {
  test('extracts SNI (lower-cased) and ALPN from a real Node ClientHello', () => {
    const result = parseClientHello(withSni);
    expect(result).toEqual({
      kind: 'client-hello',
      info: { serverName: 'api.example.com', alpnProtocols: ['h2', 'http/1.1'] },
    });
  });

  test('a ClientHello without SNI or ALPN parses with empty fields', () => {
    const result = parseClientHello(withoutSni);
    expect(result).toEqual({ kind: 'client-hello', info: { serverName: undefined, alpnProtocols: [] } });
  });

  test('every truncation is incomplete, never an exception or a wrong answer', () => {
    for (let length = 0; length < withSni.length; length++) {
      const result = parseClientHello(withSni.subarray(0, length));
      expect(result.kind).toBe('incomplete');
    }
  });

  test('handshake split across several TLS records is reassembled', () => {
    const handshake = withSni.subarray(5);
    const records: Buffer[] = [];
    for (let i = 0; i < handshake.length; i += 100) {
      const part = handshake.subarray(i, i + 100);
      const header = Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]);
      records.push(header, part);
    }
    const result = parseClientHello(Buffer.concat(records));
    expect(result.kind).toBe('client-hello');
    if (result.kind === 'client-hello') expect(result.info.serverName).toBe('api.example.com');
  });

  test('plain HTTP and other garbage are classified as not TLS', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')).kind).toBe('not-tls');
    expect(parseClientHello(Buffer.from('CONNECT a:443 HTTP/1.1\r\n')).kind).toBe('not-tls');
    expect(parseClientHello(Buffer.from([0x16, 0x99, 0x01])).kind).toBe('not-tls');
  });

  test('non-ClientHello handshake message and bad record lengths are invalid', () => {
    const serverHello = Buffer.from(withSni);
    serverHello[5] = 0x02;
    expect(parseClientHello(serverHello).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01])).kind).toBe('invalid');
  });

  test('an oversized declared ClientHello is refused without waiting for the bytes', () => {
    const header = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x7f, 0xff, 0xff]);
    expect(parseClientHello(header, 64 * 1024)).toEqual({
      kind: 'invalid',
      reason: 'ClientHello exceeds size limit',
    });
  });

  test('corrupted extension lengths are invalid, not out-of-bounds reads', () => {
    // Flip every byte of the real hello one at a time: the parser must always return a result kind.
    const kinds = new Set<string>();
    for (let i = 0; i < withSni.length; i++) {
      const mutated = Buffer.from(withSni);
      mutated[i] = (mutated[i] as number) ^ 0xff;
      const result = parseClientHello(mutated);
      kinds.add(result.kind);
      if (result.kind === 'client-hello' && result.info.serverName !== undefined) {
        expect(result.info.serverName).toMatch(/^[a-z0-9._-]+$/);
      }
    }
    expect(kinds.has('invalid')).toBe(true);
  });

  test('a host name with forbidden characters is invalid', () => {
    const index = withSni.indexOf('API.Example.com');
    const mutated = Buffer.from(withSni);
    expect(index).toBeGreaterThan(0);
    mutated[index + 3] = 0x2f; // '/'
    expect(parseClientHello(mutated).kind).toBe('invalid');
  });

  test('random bytes never throw', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = randomBytes(1 + (i % 300));
      if (i % 2 === 0) bytes[0] = 0x16;
      if (i % 4 === 0) bytes[1] = 0x03;
      expect(['incomplete', 'not-tls', 'invalid', 'client-hello']).toContain(parseClientHello(bytes).kind);
    }
  });
});

describe('peekClientHello', () => {
  let server: net.Server;
  let port: number;
  beforeAll(async () => {
    server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => server.close());

  test('classifies the stream and leaves every byte readable afterwards', async () => {
    const accepted = once(server, 'connection');
    const client = net.connect(port, '127.0.0.1');
    const [socket] = (await accepted) as [net.Socket];
    // Send the hello in two chunks to exercise buffering.
    client.write(withSni.subarray(0, 10));
    setImmediate(() => client.write(withSni.subarray(10)));
    const result = await peekClientHello(socket, 5000);
    expect(result.parse.kind).toBe('client-hello');
    let replay = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      replay = Buffer.concat([replay, chunk]);
    });
    socket.resume();
    const deadline = Date.now() + 5000;
    while (replay.length < withSni.length && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(replay.equals(withSni)).toBe(true);
    client.destroy();
    socket.destroy();
  });

  test('a silent client resolves as ended after the timeout', async () => {
    const accepted = once(server, 'connection');
    const client = net.connect(port, '127.0.0.1');
    const [socket] = (await accepted) as [net.Socket];
    const result = await peekClientHello(socket, 50);
    expect(result).toEqual({ parse: { kind: 'incomplete' }, ended: true });
    client.destroy();
    socket.destroy();
  });
});
