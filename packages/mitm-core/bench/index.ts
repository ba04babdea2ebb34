// npm run bench -w @httpmesh/mitm-core            CA minting, WebCrypto provider, proxy throughput
// npm run bench -w @httpmesh/mitm-core -- --soak  also the 100,000-connection soak
import { benchMint } from './mint.js';
import { benchProxy } from './proxy.js';
import { benchFilters } from './proxy-filters.js';
import { benchProxySoak } from './proxy-soak.js';
import { benchUpstreamClient } from './proxy-upstream-client.js';
import { benchWebCrypto } from './webcrypto.js';

await benchWebCrypto();
await benchMint();
await benchUpstreamClient();
await benchFilters();
await benchProxy();
if (process.argv.includes('--soak')) await benchProxySoak();
