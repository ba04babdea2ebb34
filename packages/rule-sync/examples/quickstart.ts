// Control plane and one sidecar in one process, plaintext on loopback.
// Run: npx tsx examples/quickstart.ts   (from packages/rule-sync, after `npm run build` when importing the package)
import {
  createRuleSyncClient,
  createRuleSyncServer,
  InterceptRule_Action,
  ResourceType,
} from '../src/index.js';

const server = createRuleSyncServer({ insecure: true, debounce: { quietMs: 50, maxDelayMs: 500 } });
const port = await server.listen('127.0.0.1:0');
const group = { service: 'checkout', labels: { env: 'dev' } };
server.setResources(group, [
  {
    name: 'partner-api',
    version: '',
    body: {
      $case: 'interceptRule',
      value: {
        name: 'partner-api',
        domain: '*.partner.com',
        action: InterceptRule_Action.ACTION_INTERCEPT,
        upstreamTlsVerify: undefined, // absent = verify upstream certificates
      },
    },
  },
  {
    name: 'orders',
    version: '',
    body: {
      $case: 'routeSet',
      value: {
        name: 'orders',
        host: 'api.partner.com',
        routes: [{ pattern: '/orders/:id', methods: ['GET'] }],
      },
    },
  },
]);

const client = createRuleSyncClient({
  addresses: [`127.0.0.1:${port}`],
  node: { id: 'sidecar-1', service: 'checkout', labels: { env: 'dev' }, version: '0.1.0' },
  subscriptions: [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, ResourceType.RESOURCE_TYPE_ROUTE_SET],
  insecure: true,
  validate: (update) => {
    if (update.resources.length > 10_000) throw new Error('too many resources');
  },
});
client.on('applied', (update) => {
  console.log(
    `sidecar applied ${update.resources.length} resource(s) of type ${update.type} at ${update.systemVersion}`,
  );
});
// The control plane sees each ACK; wait until both types are acknowledged.
const acked = new Promise<void>((resolve) => {
  let count = 0;
  server.on('ack', () => {
    if (++count === 2) resolve();
  });
});
await client.start();
await acked;
client.sendMetricSnapshot({ routes: [{ host: 'api.partner.com', pattern: '/orders/:id', count: 1 }] });
console.log(
  server
    .sidecars()
    .map((s) => `${s.node.id} ${s.group} ${s.types.map((t) => `${t.type}=${t.ackedVersion}`).join(' ')}`),
);
await client.close();
await server.close();
