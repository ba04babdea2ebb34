// The benchmark's upstream, in a process of its own so the load generator and the proxies do not share its
// event loop: HTTP and HTTPS on the addresses and ports the parent names, a small JSON reply, keep-alive.
// Prints one JSON line with the bound ports when listening.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

const host = process.env['BENCH_UPSTREAM_HOST'] ?? '127.0.0.2';
const httpsPort = Number(process.env['BENCH_UPSTREAM_HTTPS_PORT'] ?? '0');
const certFile = process.env['BENCH_UPSTREAM_CERT'];
const keyFile = process.env['BENCH_UPSTREAM_KEY'];
if (certFile === undefined || keyFile === undefined) throw new Error('BENCH_UPSTREAM_CERT/KEY not set');

const body = Buffer.from('{"ok":true,"item":{"id":1,"name":"benchmark item"}}');
const reply = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
};

const http = createServer({ keepAliveTimeout: 60_000 }, reply);
const https = createHttpsServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile), keepAliveTimeout: 60_000 },
  reply,
);
const listen = (server: typeof http | typeof https, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });

const ports = { http: await listen(http, 0), https: await listen(https, httpsPort) };
process.stdout.write(`${JSON.stringify(ports)}\n`);
process.on('SIGTERM', () => process.exit(0));
