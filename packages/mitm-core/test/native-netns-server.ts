// Fixture for native.test.ts, run inside a network namespace with `ip netns exec`: three listeners (IPv4,
// IPv6, dual-stack) that answer each connection with the original destination the addon read for it.
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createOriginalDestinationReader } from '../src/native/original-destination.js';

const reader = createOriginalDestinationReader({ logger: (line) => process.stderr.write(`${line}\n`) });

function answer(socket: Socket): void {
  const destination = reader.read(socket);
  socket.end(
    `${JSON.stringify({ destination, local: { address: socket.localAddress, port: socket.localPort } })}\n`,
  );
}

function listen(host: string, ipv6Only: boolean): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(answer);
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only }, () => resolve(server));
  });
}

const [v4, v6, dual] = await Promise.all([
  listen('127.0.0.1', false),
  listen('::1', true),
  listen('::', false),
]);
const port = (server: Server) => (server.address() as AddressInfo).port;
process.stdout.write(
  `${JSON.stringify({ supported: reader.supported(), v4: port(v4), v6: port(v6), dual: port(dual) })}\n`,
);
// The test ends this process by pid when it is done.
