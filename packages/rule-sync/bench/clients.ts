// Bench worker: runs `count` rule-sync clients against one server and reports over IPC.
import { performance } from 'node:perf_hooks';
import {
  createRuleSyncClient,
  type RuleSyncClient,
  ResourceType,
  type RuleSyncLogger,
} from '../src/index.js';

interface StartMessage {
  kind: 'start';
  address: string;
  count: number;
  offset: number;
  /** mTLS material when the bench runs with BENCH_TLS=1: one certificate per client. */
  tls?: { ca: string; key: string; certs: string[] };
}

const quiet: RuleSyncLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: (m) => console.error(m),
};
const now = (): number => performance.timeOrigin + performance.now();
const clients: RuleSyncClient[] = [];

function send(message: object): void {
  process.send?.(message);
}

process.on('message', async (raw: unknown) => {
  const message = raw as StartMessage | { kind: 'stop' };
  if (message.kind === 'stop') {
    await Promise.all(clients.map((c) => c.close()));
    process.exit(0);
  }
  const { address, count, offset, tls } = message;
  for (let i = 0; i < count; i++) {
    const id = `bench-${offset + i}`;
    const client = createRuleSyncClient({
      addresses: [address],
      node: { id, service: 'bench', labels: { env: 'bench' } },
      subscriptions: [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, ResourceType.RESOURCE_TYPE_ROUTE_SET],
      ...(tls ? { tls: { ca: tls.ca, key: tls.key, cert: tls.certs[i] ?? '' } } : { insecure: true }),
      logger: quiet,
      heartbeatIntervalMs: 30_000,
      // One TCP connection per sidecar, as in production (grpc-js would otherwise share one).
      channelOptions: { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'localhost' },
    });
    client.on('applied', (u) => {
      if (u.type === ResourceType.RESOURCE_TYPE_INTERCEPT_RULE)
        send({ kind: 'applied', id, version: u.systemVersion, at: now() });
    });
    clients.push(client);
    await client.start();
  }
  send({ kind: 'started' });
});
