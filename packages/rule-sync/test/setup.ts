import { afterAll, afterEach, beforeAll } from 'vitest';
import {
  createRuleSyncClient,
  createRuleSyncServer,
  type RuleSyncClient,
  type RuleSyncClientOptions,
  type RuleSyncServer,
  type RuleSyncServerOptions,
} from '../src/index.js';
import { createPki, INTERCEPT, memoryLogger, type Pki, ROUTES } from './helpers.js';

export const GROUP = { service: 'orders', labels: { env: 'test' } };

/** The test server certificate is for 127.0.0.1 and localhost; clients dial 127.0.0.1 and check `localhost`. */
export const SERVER_NAME = { 'grpc.ssl_target_name_override': 'localhost' };

/** One openssl PKI for the file (created in beforeAll, removed in afterAll) and server options using it. */
export function useMtlsPki(): { readonly pki: Pki; serverOptions(): RuleSyncServerOptions } {
  let pki: Pki | undefined;
  beforeAll(() => {
    pki = createPki();
  });
  afterAll(() => pki?.cleanup());
  const current = (): Pki => {
    if (pki === undefined) throw new Error('useMtlsPki: the PKI exists only inside tests');
    return pki;
  };
  return {
    get pki() {
      return current();
    },
    serverOptions: () => {
      const { ca, serverCert, serverKey } = current();
      return { tls: { ca, cert: serverCert, key: serverKey } };
    },
  };
}

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
