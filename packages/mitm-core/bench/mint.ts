// Leaf minting cost for a host the CA has not seen: issueLeaf (sign + PEM) and secureContextFor (sign + PEM +
// tls.createSecureContext, the real per-new-host cost in the proxy). Target: p50 < 5 ms.
// Run: node --import tsx bench/mint.ts   (also called from bench/index.ts when present)
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '../src/ca/index.js';
import type { CaKeyAlgorithm } from '../src/ca/index.js';
import { formatSummary, sample, summarize } from './mint-stats.js';

const TARGET_P50_MS = 5;

export async function benchMint(count = 400): Promise<boolean> {
  let ok = true;
  for (const keyAlgorithm of ['ECDSA-P256', 'RSA-2048'] as CaKeyAlgorithm[]) {
    const ca = await CertificateAuthority.create({ commonName: `bench ${keyAlgorithm}`, keyAlgorithm });
    const leaf = summarize(await sample(count, 50, (i) => ca.issueLeaf([`leaf-${i}.bench.test`])));
    const context = summarize(
      // cacheSize default 1000 > count, and every name is new: each call is a real mint.
      await sample(count, 50, (i) => ca.secureContextFor(`ctx-${i}.bench.test`)),
    );
    console.log(formatSummary(`issueLeaf new host (CA ${keyAlgorithm})`, leaf));
    console.log(formatSummary(`secureContextFor new host (CA ${keyAlgorithm})`, context));
    const cached = summarize(await sample(count, 0, (i) => ca.secureContextFor(`ctx-${i}.bench.test`)));
    console.log(formatSummary(`secureContextFor cached host (CA ${keyAlgorithm})`, cached));
    if (context.p50 >= TARGET_P50_MS) ok = false;
  }
  console.log(`leaf minting p50 < ${TARGET_P50_MS} ms: ${ok ? 'PASS' : 'FAIL'}`);
  return ok;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ok = await benchMint();
  process.exitCode = ok ? 0 : 1;
}
