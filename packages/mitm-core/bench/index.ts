// npm run bench -w @httpmesh/mitm-core            CA minting, WebCrypto provider, proxy throughput
// npm run bench -w @httpmesh/mitm-core -- --soak  also the 100,000-connection soak
import { benchHeaders } from './headers.js';
import { benchMint } from './mint.js';
import { benchProxy } from './proxy.js';
import { benchProxyCpu } from './proxy-cpu.js';
import { benchProxyLatency } from './proxy-latency.js';
import { benchFilters } from './proxy-filters.js';
import { benchProxySoak } from './proxy-soak.js';
import { benchProxySyscalls } from './proxy-syscalls.js';
import { benchUpstreamClient } from './proxy-upstream-client.js';
import { benchWebCrypto } from './webcrypto.js';

await benchWebCrypto();
await benchMint();
await benchUpstreamClient();
await benchFilters();
benchHeaders();
await benchProxy();
await benchProxyCpu();
await benchProxyLatency();
await benchProxySyscalls();
if (process.argv.includes('--soak')) await benchProxySoak();
