// WebCrypto provider comparison for @peculiar/x509: Node's built-in webcrypto vs @peculiar/webcrypto,
// for CA creation and leaf minting. The faster one is the package default (see src/ca/crypto-provider.ts).
// Providers are measured in alternating rounds so that load from other work on the machine hits both alike.
// Run: node --import tsx bench/webcrypto.ts
import { webcrypto } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Crypto as PeculiarCrypto } from '@peculiar/webcrypto';
import { CertificateAuthority } from '../src/ca/index.js';
import type { WebCryptoProvider } from '../src/ca/index.js';
import { formatSummary, sample, summarize } from './mint-stats.js';

const ROUNDS = 3;

interface Samples {
  ecCreate: number[];
  rsaCreate: number[];
  leaf: number[];
  context: number[];
}

async function measure(crypto: WebCryptoProvider, round: number, into: Samples): Promise<void> {
  into.ecCreate.push(
    ...(await sample(10, 2, () =>
      CertificateAuthority.create({ commonName: 'bench', keyAlgorithm: 'ECDSA-P256', crypto }),
    )),
  );
  into.rsaCreate.push(
    ...(await sample(3, 0, () =>
      CertificateAuthority.create({ commonName: 'bench', keyAlgorithm: 'RSA-2048', crypto }),
    )),
  );
  const ca = await CertificateAuthority.create({ commonName: 'bench', crypto });
  into.leaf.push(...(await sample(150, 30, (i) => ca.issueLeaf([`r${round}-h${i}.bench.test`]))));
  into.context.push(...(await sample(150, 30, (i) => ca.secureContextFor(`r${round}-c${i}.bench.test`))));
}

export async function benchWebCrypto(): Promise<void> {
  const providers: Array<[string, WebCryptoProvider, Samples]> = [
    ['node:crypto webcrypto', webcrypto, { ecCreate: [], rsaCreate: [], leaf: [], context: [] }],
    [
      '@peculiar/webcrypto',
      new PeculiarCrypto() as unknown as WebCryptoProvider,
      { ecCreate: [], rsaCreate: [], leaf: [], context: [] },
    ],
  ];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [, crypto, samples] of providers) await measure(crypto, round, samples);
  }
  for (const [name, , samples] of providers) {
    console.log(formatSummary(`[${name}] CA create ECDSA-P256`, summarize(samples.ecCreate)));
    console.log(formatSummary(`[${name}] CA create RSA-2048`, summarize(samples.rsaCreate)));
    console.log(formatSummary(`[${name}] issueLeaf new host`, summarize(samples.leaf)));
    console.log(formatSummary(`[${name}] secureContextFor new host`, summarize(samples.context)));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchWebCrypto();
}
