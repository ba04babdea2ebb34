// Child process for the proxy benches: runs one server on its own event loop so the load generator does not
// share a thread with it. Prints {"port":N} on stdout once listening. Roles: `upstream` (HTTPS),
// `upstream-http` (plain HTTP), `proxy` (transparent mode: clients speak TLS to it, it re-originates TLS to the
// upstream port), `proxy-explicit` (explicit mode: absolute-form HTTP requests).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Agent } from 'undici';
import type { ExchangeFilter } from '../src/proxy/exchange.js';

// BENCH_FROM_DIST=1 runs the compiled package (what the sidecar runs) instead of the sources through tsx, whose
// transform adds a `__name` call to every function and closure created per exchange.
const engine = (await import(
  process.env['BENCH_FROM_DIST'] === '1' ? '../dist/index.js' : '../src/index.js'
)) as typeof import('../src/index.js');
const { CertificateAuthority, createMitmProxy } = engine;

const [role, dir, upstreamPortArg, filterMode] = process.argv.slice(2) as [string, string, string?, string?];
const file = (name: string): string => readFileSync(`${dir}/${name}`, 'utf8');

async function main(): Promise<void> {
  if (role === 'upstream' || role === 'upstream-http') {
    const body = Buffer.from(
      JSON.stringify({ ok: true, service: 'bench-upstream', padding: 'x'.repeat(64) }),
    );
    // BENCH_UPSTREAM_CHUNKED=1: no content-length, so the response is chunked (as streamed bodies are).
    const chunked = process.env['BENCH_UPSTREAM_CHUNKED'] === '1';
    const respond = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (chunked) res.writeHead(200, { 'content-type': 'application/json' });
      else res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    };
    const server =
      role === 'upstream'
        ? https.createServer(
            { key: file('upstream.key'), cert: file('upstream.pem'), keepAliveTimeout: 30_000 },
            respond,
          )
        : http.createServer({ keepAliveTimeout: 30_000 }, respond);
    server.listen(0, '127.0.0.1', () => report(server.address() as net.AddressInfo));
    return;
  }
  if (role === 'floor' || role === 'floor-explicit') {
    floorProxy(role === 'floor', Number(upstreamPortArg));
    return;
  }
  const ca = await CertificateAuthority.load(file('proxy-ca.pem'), file('proxy-ca.key'));
  const noop: ExchangeFilter = { onRequestHead: () => undefined, onResponseHead: () => undefined };
  const counting: ExchangeFilter = {
    onComplete(_exchange, summary) {
      if (summary.status === 0) process.exitCode = 1;
    },
  };
  const asyncFilter: ExchangeFilter = { onRequestHead: async () => undefined };
  const filters =
    filterMode === 'sync'
      ? [noop, noop, counting]
      : filterMode === 'async'
        ? [asyncFilter, noop, counting]
        : [];
  const proxy = createMitmProxy({ ca, upstreamCa: [file('upstream-ca.pem')], filters });
  if (role === 'proxy-explicit') {
    report(await proxy.listen(0, '127.0.0.1'));
    return;
  }
  const upstreamPort = Number(upstreamPortArg);
  // Transparent mode: the load generator speaks TLS straight to us, as a redirected client would.
  const server = net.createServer({ noDelay: true }, (socket) =>
    proxy.handleConnection(socket, { address: '127.0.0.1', port: upstreamPort, family: 4 }),
  );
  server.listen(0, '127.0.0.1', () => report(server.address() as net.AddressInfo));
}

/**
 * The floor of this architecture, for comparison only: node:http(s) server + undici `Agent.dispatch` passing
 * the head and body straight through, with none of the engine (no exchange object, hooks, hop-by-hop
 * filtering, routing, TLS peeking, pinning, drain or loop checks). `floor` terminates TLS with a fixed leaf and
 * re-originates TLS to the upstream port; `floor-explicit` serves absolute-form HTTP requests.
 */
function floorProxy(tlsLegs: boolean, upstreamPort: number): void {
  const agent = new Agent({
    connections: 128,
    connect: { ca: [file('upstream-ca.pem')], servername: 'localhost' },
  });
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    const slash = tlsLegs ? 0 : url.indexOf('/', 7);
    agent.dispatch(
      {
        origin: tlsLegs ? `https://127.0.0.1:${upstreamPort}` : url.slice(0, slash),
        path: tlsLegs ? url : url.slice(slash),
        method: 'GET',
        headers: req.headers,
      },
      {
        // undici takes a handler for its new API only when it has onRequestStart.
        onRequestStart() {},
        onResponseStart(_controller, status, headers) {
          delete headers['connection'];
          delete headers['keep-alive'];
          res.writeHead(status, headers);
        },
        onResponseData(_controller, chunk) {
          res.write(chunk);
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError() {
          res.destroy();
        },
      },
    );
  };
  const server = tlsLegs
    ? https.createServer({ key: file('nginx-leaf.key'), cert: file('nginx-leaf.pem') }, handle)
    : http.createServer(handle);
  server.listen(0, '127.0.0.1', () => report(server.address() as net.AddressInfo));
}

function report(address: net.AddressInfo): void {
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}

// Exit normally on signals so --cpu-prof / coverage data gets written.
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
void main();
