// Long soak: 100,000 short-lived client connections through the proxy (90 % plain HTTP absolute-URI,
// 10 % CONNECT + intercepted TLS with session resumption), then fd count, RSS and heap vs baseline.
// Run: node --expose-gc --import tsx bench/proxy-soak.ts   (bench/index.ts runs it with --soak)
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CertificateAuthority } from '../src/ca/index.js';
import { createMitmProxy } from '../src/proxy/proxy.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const fds = (): number => readdirSync('/proc/self/fd').length;
const MB = 1024 * 1024;

async function readResponse(socket: net.Socket): Promise<void> {
  let data = '';
  while (!data.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    data += chunk.toString('latin1');
  }
  if (!data.startsWith('HTTP/1.1 200')) throw new Error(`unexpected reply: ${data.slice(0, 80)}`);
}

export async function benchProxySoak(
  total = Number(process.env['SOAK_CONNECTIONS'] ?? 100_000),
): Promise<void> {
  const proxyCa = await CertificateAuthority.create({ commonName: 'soak proxy CA' });
  const upstreamCa = await CertificateAuthority.create({ commonName: 'soak upstream CA' });
  const leaf = await upstreamCa.issueLeaf(['localhost', '127.0.0.1']);
  const handler: http.RequestListener = (_req, res) => res.end('ok');
  const plainUpstream = http.createServer(handler).listen(0, '127.0.0.1');
  const tlsUpstream = https
    .createServer({ key: leaf.keyPem, cert: leaf.chainPem }, handler)
    .listen(0, '127.0.0.1');
  await Promise.all([once(plainUpstream, 'listening'), once(tlsUpstream, 'listening')]);
  const plainPort = (plainUpstream.address() as net.AddressInfo).port;
  const tlsPort = (tlsUpstream.address() as net.AddressInfo).port;
  const proxy = createMitmProxy({
    ca: proxyCa,
    upstreamCa: [upstreamCa.certPem],
    keepAliveTimeoutMs: 500,
    upstreamKeepAliveTimeoutMs: 500,
  });
  const proxyPort = (await proxy.listen(0)).port;
  let session: Buffer | undefined;

  const plain = async (): Promise<void> => {
    const socket = net.connect({ port: proxyPort, host: '127.0.0.1', noDelay: true });
    await once(socket, 'connect');
    socket.write(
      `GET http://127.0.0.1:${plainPort}/ HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`,
    );
    await readResponse(socket);
    socket.destroy();
  };
  const intercepted = async (): Promise<void> => {
    const tunnel = net.connect({ port: proxyPort, host: '127.0.0.1', noDelay: true });
    await once(tunnel, 'connect');
    tunnel.write(`CONNECT localhost:${tlsPort} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
    await readResponse(tunnel);
    const socket = tls.connect({
      socket: tunnel,
      servername: 'localhost',
      ca: proxyCa.certPem,
      ...(session ? { session } : {}),
    });
    socket.once('session', (s: Buffer) => {
      session = s;
    });
    await once(socket, 'secureConnect');
    socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    await readResponse(socket);
    socket.destroy();
    tunnel.destroy();
  };
  const settle = async (): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while (proxy.stats.openClientSockets > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1_500)); // let 500 ms idle pools drain
    gc();
  };

  for (let i = 0; i < 200; i++) await (i % 10 === 0 ? intercepted() : plain());
  await settle();
  const before = { fds: fds(), rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
  const started = performance.now();
  let next = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const index = next++;
      try {
        await (index % 10 === 0 ? intercepted() : plain());
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  const seconds = (performance.now() - started) / 1000;
  await settle();
  const after = { fds: fds(), rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
  console.log(
    `\nsoak: ${total} connections (10 % intercepted TLS) in ${seconds.toFixed(1)} s, ${failures} failures`,
  );
  console.log(`  fds ${before.fds} -> ${after.fds}; open client sockets ${proxy.stats.openClientSockets}`);
  console.log(
    `  rss ${(before.rss / MB).toFixed(1)} -> ${(after.rss / MB).toFixed(1)} MB; heap ${(before.heap / MB).toFixed(1)} -> ${(after.heap / MB).toFixed(1)} MB`,
  );
  await proxy.close();
  plainUpstream.close();
  tlsUpstream.close();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchProxySoak();
}
