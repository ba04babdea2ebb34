import { afterEach } from 'vitest';
import {
  createRuleSyncClient,
  createRuleSyncServer,
  type RuleSyncClient,
  type RuleSyncClientOptions,
  type RuleSyncServer,
  type RuleSyncServerOptions,
} from '../src/index.js';
import { INTERCEPT, memoryLogger, ROUTES } from './helpers.js';

export const GROUP = { service: 'orders', labels: { env: 'test' } };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function startServer(
  opts: RuleSyncServerOptions = { insecure: true },
  address = '127.0.0.1:0',
): Promise<{ server: RuleSyncServer; address: string; port: number }> {
  const server = createRuleSyncServer({
    logger: memoryLogger(),
    debounce: { quietMs: 5, maxDelayMs: 50 },
    ...opts,
  });
  const port = await server.listen(address);
  cleanups.push(() => server.close(200));
  return { server, address: `127.0.0.1:${port}`, port };
}

export function makeClient(
  address: string | string[],
  opts: Partial<RuleSyncClientOptions> = {},
): RuleSyncClient {
  const client = createRuleSyncClient({
    addresses: Array.isArray(address) ? address : [address],
    node: { id: 'node-1', service: 'orders', labels: { env: 'test' } },
    subscriptions: [INTERCEPT, ROUTES],
    insecure: true,
    logger: memoryLogger(),
    backoff: { initialMs: 20, maxMs: 100 },
    ...opts,
  });
  cleanups.push(() => client.close());
  return client;
}

export const domains = (client: RuleSyncClient): string[] =>
  client
    .resources(INTERCEPT)
    .map((r) => (r.body?.$case === 'interceptRule' ? r.body.value.domain : '?'))
    .sort();
