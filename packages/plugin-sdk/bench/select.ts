// Cost of PluginChain.select per exchange (host + path scoping through @httpmesh/url-matcher), with
// 8 plugins: 2 unscoped, 3 host-scoped, 3 pattern-scoped. Run: node --import tsx bench/select.ts
import { PluginChain, type PluginConfig } from '../src/index.js';

const configs: PluginConfig[] = [
  { name: 'audit', order: 1, failureMode: 'open' },
  { name: 'tagger', order: 2, failureMode: 'open' },
  { name: 'internal', order: 3, hosts: ['*.internal.test'], failureMode: 'open' },
  { name: 'api', order: 4, hosts: ['api.example.com', 'api.example.org'], failureMode: 'closed' },
  { name: 'shop', order: 5, hosts: ['*.shop.example'], patterns: ['/cart/:id'], failureMode: 'open' },
  { name: 'orders', order: 6, patterns: ['/v1/orders/:id', '/v1/orders'], failureMode: 'open' },
  { name: 'files', order: 7, patterns: ['/files/*path'], failureMode: 'open' },
  { name: 'docs', order: 8, patterns: ['/docs{/:lang}/intro'], failureMode: 'open' },
];
const chain = new PluginChain(configs, () => undefined);
const targets: [string, string][] = [
  ['api.example.com', '/v1/orders/8812?expand=items'],
  ['db.internal.test:8443', '/health'],
  ['eu.shop.example', '/cart/c-19'],
  ['cdn.example.net', '/files/a/b/c.pdf'],
  ['www.example.com', '/docs/fr/intro'],
  ['www.example.com', '/nothing/here'],
];
let sink = 0;
const rounds: number[] = [];
for (let r = 0; r < 5; r++) {
  const n = 500_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const t = targets[i % targets.length] as [string, string];
    sink += chain.select(t[0], t[1]).length;
  }
  rounds.push(Number(process.hrtime.bigint() - start) / n);
}
rounds.sort((a, b) => a - b);
console.log(
  `PluginChain.select, 8 plugins (6 scoped): median ${rounds[2]?.toFixed(0)} ns per exchange (${sink})`,
);
