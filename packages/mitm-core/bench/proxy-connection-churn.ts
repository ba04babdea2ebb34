// Per-connection CPU of the proxy: short-lived client connections (one absolute-URI GET with
// `connection: close` each), the proxy in its own process, measured there with process.cpuUsage().
// This is the path the client-connection cap sits on (one compare, an increment, a 'close' listener).
//
//   node --import tsx bench/proxy-connection-churn.ts
//   A/B: CHURN_ENGINES='before=/abs/a/src/index.ts,after=/abs/b/src/index.ts' CHURN_ROUNDS=5
//        (fresh proxy process per round, engines interleaved; medians and spread)
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { median } from './bench-fixtures.js';

const CHILD_ROLE = 'churn-proxy';

interface CpuReply {
  microseconds: number;
  refused: number;
}

/** The proxy process: listens, then reports its CPU time between 'start' and 'stop' messages. */
async function proxyChild(enginePath: string): Promise<void> {
  const engine = (await import(enginePath)) as typeof import('../src/index.js');
  const ca = await engine.CertificateAuthority.create({ commonName: 'churn bench CA' });
  const proxy = engine.createMitmProxy({ ca });
  const { port } = await proxy.listen(0);
  let started: NodeJS.CpuUsage | undefined;
  process.on('message', (message: string) => {
    if (message === 'start') {
      started = process.cpuUsage();
      return;
    }
    if (message === 'stop') {
      const used = process.cpuUsage(started);
      const stats = proxy.stats as { refusedClientConnections?: number };
      const reply: CpuReply = {
        microseconds: used.user + used.system,
        refused: stats.refusedClientConnections ?? 0,
      };
      process.send?.(reply);
      return;
    }
    if (message === 'exit') void proxy.close().then(() => process.exit(0));
  });
  process.send?.({ port });
}

async function oneConnection(proxyPort: number, upstreamPort: number): Promise<void> {
  const socket = net.connect({ port: proxyPort, host: '127.0.0.1', noDelay: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(
    `GET http://127.0.0.1:${upstreamPort}/ HTTP/1.1\r\nhost: 127.0.0.1:${upstreamPort}\r\nconnection: close\r\n\r\n`,
  );
  let head = '';
  socket.on('data', (chunk: Buffer) => {
    if (head.length < 12) head += chunk.toString('latin1');
  });
  await once(socket, 'close');
  if (!head.startsWith('HTTP/1.1 200')) throw new Error(`unexpected reply: ${head.slice(0, 40)}`);
}

async function round(enginePath: string, upstreamPort: number, connections: number): Promise<number> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [CHILD_ROLE, enginePath], {
    execArgv: ['--import', 'tsx'],
  });
  const [ready] = (await once(child, 'message')) as [{ port: number }];
  const ask = async (message: string): Promise<CpuReply> => {
    child.send(message);
    const [reply] = (await once(child, 'message')) as [CpuReply];
    return reply;
  };
  // Warm-up: JIT, the upstream pool's first connections.
  for (let i = 0; i < 300; i++) await oneConnection(ready.port, upstreamPort);
  child.send('start');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < connections) {
      next++;
      await oneConnection(ready.port, upstreamPort);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const reply = await ask('stop');
  if (reply.refused !== 0) throw new Error(`${reply.refused} connections refused`);
  child.send('exit');
  await once(child, 'exit');
  return reply.microseconds / connections;
}

export async function benchConnectionChurn(): Promise<void> {
  const engines = (
    process.env['CHURN_ENGINES'] ?? `current=${fileURLToPath(new URL('../src/index.ts', import.meta.url))}`
  )
    .split(',')
    .map((pair) => {
      const [name, path] = pair.split('=') as [string, string];
      return { name, path };
    });
  const rounds = Number(process.env['CHURN_ROUNDS'] ?? 3);
  const connections = Number(process.env['CHURN_CONNECTIONS'] ?? 4_000);
  const upstream = http.createServer({ keepAliveTimeout: 30_000 }, (_req, res) => res.end('ok'));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const results = new Map<string, number[]>(engines.map((e) => [e.name, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order so neither engine always runs first.
    const order = r % 2 === 0 ? engines : [...engines].reverse();
    for (const engine of order) {
      const perConnection = await round(engine.path, upstreamPort, connections);
      results.get(engine.name)?.push(perConnection);
    }
  }
  console.log(
    `\nconnection churn: proxy CPU per client connection (${connections} connections x ${rounds} rounds)`,
  );
  for (const [name, values] of results) {
    const shown = values.map((v) => v.toFixed(1)).join(', ');
    console.log(
      `  ${name.padEnd(8)} median ${median(values).toFixed(1)} µs  [min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)}]  (${shown})`,
    );
  }
  upstream.closeAllConnections();
  upstream.close();
}

if (process.argv[2] === CHILD_ROLE) await proxyChild(process.argv[3] as string);
else if (process.argv[1] === fileURLToPath(import.meta.url)) await benchConnectionChurn();
