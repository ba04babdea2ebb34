// Child process for bench/proxy.ts: runs one server (upstream or proxy) on its own event loop so the
// load generator does not share a thread with it. Prints {"port":N} on stdout once listening.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { CertificateAuthority } from '../src/ca/index.js';
import type { ExchangeFilter } from '../src/proxy/exchange.js';
import { createMitmProxy } from '../src/proxy/proxy.js';

const [role, dir, upstreamPortArg, filterMode] = process.argv.slice(2) as [string, string, string?, string?];
const file = (name: string): string => readFileSync(`${dir}/${name}`, 'utf8');

async function main(): Promise<void> {
  if (role === 'upstream') {
    const body = Buffer.from(
      JSON.stringify({ ok: true, service: 'bench-upstream', padding: 'x'.repeat(64) }),
    );
    const server = https.createServer(
      { key: file('upstream.key'), cert: file('upstream.pem'), keepAliveTimeout: 30_000 },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      },
    );
    server.listen(0, '127.0.0.1', () => report(server.address() as net.AddressInfo));
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
  const upstreamPort = Number(upstreamPortArg);
  // Transparent mode: the load generator speaks TLS straight to us, as a redirected client would.
  const server = net.createServer({ noDelay: true }, (socket) =>
    proxy.handleConnection(socket, { address: '127.0.0.1', port: upstreamPort, family: 4 }),
  );
  server.listen(0, '127.0.0.1', () => report(server.address() as net.AddressInfo));
}

function report(address: net.AddressInfo): void {
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}

// Exit normally on signals so --cpu-prof / coverage data gets written.
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
void main();
