import {
  X509Certificate as NodeX509Certificate,
  createHash,
  createPrivateKey,
  randomBytes,
} from 'node:crypto';
import type { KeyObject, webcrypto } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { inspect } from 'node:util';
import { parseCertificate } from './certificate-der.js';
import type { CertificateFacts } from './certificate-der.js';
import { children, expectTag, readElement } from './der.js';
import { defaultCryptoProvider } from './crypto-provider.js';
import type { WebCryptoProvider } from './crypto-provider.js';
import {
  CaCertificateInvalidError,
  CaExpiredError,
  CaKeyInvalidError,
  CaKeyMismatchError,
  CaKeyUnsupportedError,
  CaNotAuthorityError,
  CaOptionsInvalidError,
} from './errors.js';
import { normalizeHostname } from './hostname.js';
import type { IssuerParams } from './x509-issuer.js';
import { loadX509Issuer } from './x509-issuer-loader.js';
import { encodeCertificate, encodeTbsCertificate, leafExtensions } from './leaf-der.js';
import type { LeafTemplate, SignatureKind } from './leaf-der.js';
import type { NormalizedName } from './hostname.js';
import {
  assertNamePermitted,
  normalizeDomainConstraint,
  readNameConstraints,
  validateIpRange,
} from './name-constraints.js';
import type { NameConstraintSet } from './name-constraints.js';
import {
  CERT_FILE_MODE,
  KEY_FILE_MODE,
  caFilesIn,
  ensureDirectory,
  readTextFile,
  writeFileWithMode,
} from './files.js';
import type { CaFileNames, CaFiles } from './files.js';
import { derToPem, splitCertificates } from './pem.js';
import { SecureContextCache } from './secure-context-cache.js';
import type { MintedContext } from './secure-context-cache.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export type CaKeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'RSA-3072';
export type LeafKeyAlgorithm = 'ECDSA-P256' | 'RSA-2048';

/** How leaves are minted and cached; accepted by `create`, `load` and `issueIntermediate`. */
export interface LeafPolicy {
  /** Algorithm of the one key pair shared by all leaves. Default 'ECDSA-P256'. */
  readonly leafKeyAlgorithm?: LeafKeyAlgorithm;
  /** Leaf lifetime in days, at most 47 (the CA/Browser Forum limit from 2029). Default 47. */
  readonly leafValidityDays?: number;
  /** Mint a replacement this many days before a cached leaf expires. Default 7 (capped at a third of the lifetime). */
  readonly renewBeforeDays?: number;
  /** Maximum number of cached secure contexts (one per servername). Default 1000. */
  readonly cacheSize?: number;
  /** Extra options for every `tls.createSecureContext` (e.g. minVersion); key and cert are always ours. */
  readonly secureContextOptions?: Readonly<Omit<import('node:tls').SecureContextOptions, 'key' | 'cert'>>;
  /** Clock in epoch milliseconds; tests inject one to exercise renewal. Default Date.now. */
  readonly clock?: () => number;
  /** WebCrypto provider used for keys and signatures. Default: Node's built-in webcrypto. */
  readonly crypto?: WebCryptoProvider;
}

export interface CreateCaOptions extends LeafPolicy {
  readonly commonName: string;
  /** Default 'ECDSA-P256'. */
  readonly keyAlgorithm?: CaKeyAlgorithm;
  /** CA lifetime in days. Default 3650. */
  readonly validityDays?: number;
  readonly organization?: string;
}

export interface IssueIntermediateOptions extends LeafPolicy {
  /** DNS names (and their subdomains) the intermediate may sign for; ".example.com" means subdomains only. */
  readonly permittedDomains: readonly string[];
  /** CIDR ranges the intermediate may sign IP SANs for. Default: none, i.e. every IP address is excluded. */
  readonly permittedIpRanges?: readonly string[];
  /** Default 365, never beyond the issuer's own notAfter. */
  readonly validityDays?: number;
  /** Default "<issuer CN> intermediate". */
  readonly commonName?: string;
  /** Default: same algorithm as the issuer's key. */
  readonly keyAlgorithm?: CaKeyAlgorithm;
}

export interface IssuedLeaf {
  /** The leaf certificate alone. */
  readonly certPem: string;
  /** Leaf followed by the intermediates up to (excluding) the root: what a TLS server should send. */
  readonly chainPem: string;
  /** PKCS#8 PEM of the shared leaf key. */
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
}

/** Prefix of the URI SAN that names a mesh node: `spiffe://httpmesh/node/<percent-encoded node id>`. */
export const SPIFFE_NODE_PREFIX = 'spiffe://httpmesh/node/';

/** Whether `value` is a valid mesh node id: 1-128 of `A-Z a-z 0-9 . _ : -`, starting with a letter or digit. */
export function isMeshNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID.test(value);
}

/** The SPIFFE URI naming a mesh node (the id percent-encoded, as rule-sync decodes it). */
export function spiffeNodeUri(nodeId: string): string {
  return `${SPIFFE_NODE_PREFIX}${encodeURIComponent(nodeId)}`;
}

export interface IssueClientLeafOptions {
  /**
   * Mesh node id (1-128 of `A-Z a-z 0-9 . _ : -`, starting with a letter or digit). Becomes the subject CN and
   * the URI SAN `spiffe://httpmesh/node/<id>`, the two places rule-sync's `certificateNodeIds` reads.
   */
  readonly nodeId: string;
  /** Extra absolute URI SANs (e.g. another SPIFFE id). At most 16. */
  readonly uris?: readonly string[];
  /** Default 30, at most 397, never beyond the CA's notAfter. */
  readonly validityDays?: number;
  /** Algorithm of this certificate's own fresh key pair. Default 'ECDSA-P256'. */
  readonly keyAlgorithm?: LeafKeyAlgorithm;
}

export interface IssuedClientLeaf extends IssuedLeaf {
  /** PKCS#8 PEM of the key pair generated for this certificate alone. */
  readonly keyPem: string;
  /** The node's SPIFFE URI (also in the certificate's URI SAN). */
  readonly spiffeId: string;
}

export interface CaPem {
  /** This CA's certificate followed by its issuer chain (excluding a self-signed root), as `load` accepts. */
  readonly certPem: string;
  /** PKCS#8 PEM of the CA private key. */
  readonly keyPem: string;
}

export interface CaStats {
  readonly leavesIssued: number;
  readonly cacheSize: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
}

interface ResolvedPolicy {
  readonly leafKeyAlgorithm: LeafKeyAlgorithm;
  readonly leafValidityMs: number;
  readonly renewBeforeMs: number;
  readonly cacheSize: number;
  readonly secureContextOptions: Readonly<import('node:tls').SecureContextOptions>;
  readonly clock: () => number;
  readonly crypto: WebCryptoProvider;
}

interface LeafKey {
  readonly keyPem: string;
  readonly template: LeafTemplate;
}

interface KeyAlgorithmSpec {
  readonly generate: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams;
  readonly sign: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MAX_LEAF_DAYS = 47;
const MAX_CA_DAYS = 36_500;
const RSA_EXPONENT = new Uint8Array([1, 0, 1]);
const MAX_CLIENT_DAYS = 397;
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$/;

function keyAlgorithmSpec(algorithm: CaKeyAlgorithm | LeafKeyAlgorithm): KeyAlgorithmSpec {
  switch (algorithm) {
    case 'ECDSA-P256':
      return { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ECDSA-P384':
      return { generate: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'RSA-2048':
    case 'RSA-3072': {
      const modulusLength = algorithm === 'RSA-2048' ? 2048 : 3072;
      const name = 'RSASSA-PKCS1-v1_5';
      return {
        generate: { name, modulusLength, publicExponent: RSA_EXPONENT, hash: 'SHA-256' },
        sign: { name },
      };
    }
    default:
      throw new CaOptionsInvalidError(`unsupported key algorithm ${JSON.stringify(algorithm)}`);
  }
}

/** A fresh extractable key pair (exported later as PKCS#8 / SPKI) for a CA, a leaf template or a client. */
async function generateKeyPair(crypto: WebCryptoProvider, spec: KeyAlgorithmSpec): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(spec.generate, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function signatureKindOf(algorithm: CaKeyAlgorithm): SignatureKind {
  if (algorithm === 'ECDSA-P256') return 'ecdsa-sha256';
  if (algorithm === 'ECDSA-P384') return 'ecdsa-sha384';
  return 'rsa-sha256';
}

/** Maps a parsed (private or public) key to the WebCrypto algorithm we sign with. */
function algorithmOfKey(key: KeyObject): CaKeyAlgorithm {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ECDSA-P256';
    if (curve === 'secp384r1') return 'ECDSA-P384';
    throw new CaKeyUnsupportedError(`EC curve ${String(curve)} is not supported (P-256 and P-384 are)`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new CaKeyUnsupportedError(`RSA key of ${bits} bits is too small (2048 minimum)`);
    return bits >= 3072 ? 'RSA-3072' : 'RSA-2048';
  }
  throw new CaKeyUnsupportedError(`${String(key.asymmetricKeyType)} keys are not supported (EC and RSA are)`);
}

function checkDays(name: string, value: number | undefined, fallback: number, max: number): number {
  const days = value ?? fallback;
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0 || days > max) {
    throw new CaOptionsInvalidError(`${name} must be a number in (0, ${max}]`);
  }
  return days;
}

function resolvePolicy(options: LeafPolicy | undefined, inherited?: ResolvedPolicy): ResolvedPolicy {
  const leafDays = checkDays(
    'leafValidityDays',
    options?.leafValidityDays,
    inherited ? inherited.leafValidityMs / DAY_MS : MAX_LEAF_DAYS,
    MAX_LEAF_DAYS,
  );
  const leafValidityMs = leafDays * DAY_MS;
  const renewDays = options?.renewBeforeDays ?? (inherited ? inherited.renewBeforeMs / DAY_MS : 7);
  if (typeof renewDays !== 'number' || !Number.isFinite(renewDays) || renewDays < 0) {
    throw new CaOptionsInvalidError('renewBeforeDays must be a non-negative number');
  }
  const cacheSize = options?.cacheSize ?? inherited?.cacheSize ?? 1000;
  if (!Number.isInteger(cacheSize) || cacheSize < 1) {
    throw new CaOptionsInvalidError('cacheSize must be a positive integer');
  }
  const leafKeyAlgorithm = options?.leafKeyAlgorithm ?? inherited?.leafKeyAlgorithm ?? 'ECDSA-P256';
  if (leafKeyAlgorithm !== 'ECDSA-P256' && leafKeyAlgorithm !== 'RSA-2048') {
    throw new CaOptionsInvalidError(`unsupported leafKeyAlgorithm ${JSON.stringify(leafKeyAlgorithm)}`);
  }
  return {
    leafKeyAlgorithm,
    leafValidityMs,
    // Renew early enough to overlap, but never so early that every request would mint.
    renewBeforeMs: Math.min(renewDays * DAY_MS, leafValidityMs / 3),
    cacheSize,
    secureContextOptions: options?.secureContextOptions ?? inherited?.secureContextOptions ?? {},
    clock: options?.clock ?? inherited?.clock ?? Date.now,
    crypto: options?.crypto ?? inherited?.crypto ?? defaultCryptoProvider,
  };
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  // Positive and without a leading zero byte, so the DER INTEGER is exactly 16 bytes.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value (what @peculiar/x509 computes). */
function keyIdentifier(subjectPublicKey: Uint8Array): string {
  return createHash('sha1').update(subjectPublicKey).digest('hex');
}

/** The subjectPublicKey bits of a DER SubjectPublicKeyInfo (as WebCrypto exports it). */
function subjectPublicKeyOf(spki: Uint8Array): Uint8Array {
  const parts = children(spki, expectTag(readElement(spki, 0), 0x30, 'SubjectPublicKeyInfo'));
  const bits = expectTag(parts[1], 0x03, 'subjectPublicKey BIT STRING');
  return spki.subarray(bits.contentStart + 1, bits.end);
}

interface CaState {
  readonly cert: CertificateFacts;
  readonly certPem: string;
  readonly chainPems: readonly string[];
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
  readonly signatureKind: SignatureKind;
  readonly subjectKeyId: string;
  readonly constraints: readonly NameConstraintSet[];
  /** Remaining intermediate levels this CA may create; undefined = unlimited. */
  readonly pathLength: number | undefined;
  readonly policy: ResolvedPolicy;
}

/** The parts of a certificate request that say who signs it: this CA's name, key id and signing key. */
function issuerParams(state: CaState, crypto: WebCryptoProvider): IssuerParams {
  return {
    crypto,
    issuerName: state.cert.subjectDer,
    issuerKeyId: state.subjectKeyId,
    signingKey: state.signingKey,
    signingAlgorithm: state.signingAlgorithm,
  };
}

/**
 * A certificate authority that mints short-lived leaf certificates for intercepted hosts.
 * The private key lives only in a private field: it is not reachable by util.inspect, JSON or toString,
 * and is exported only by an explicit `toPem()` / `saveToDir()`.
 */
export class CertificateAuthority {
  readonly #state: CaState;
  readonly #cache: SecureContextCache;
  /** What follows a leaf in the chain a server sends: this CA unless it is a root, then its issuers. */
  readonly #leafChainSuffix: string;
  #leafKey: Promise<LeafKey> | null = null;
  #leavesIssued = 0;

  private constructor(state: CaState) {
    this.#state = state;
    this.#leafChainSuffix = (isSelfSigned(state.cert) ? '' : state.certPem) + state.chainPems.join('');
    this.#cache = new SecureContextCache(
      state.policy.cacheSize,
      (servername) => this.#mintContext(servername),
      state.policy.clock,
      (servername) => assertNamePermitted(state.constraints, normalizeHostname(servername)),
    );
  }

  /** Creates a new self-signed root CA. */
  static async create(options: CreateCaOptions): Promise<CertificateAuthority> {
    if (
      typeof options?.commonName !== 'string' ||
      options.commonName.length === 0 ||
      options.commonName.length > 64
    ) {
      throw new CaOptionsInvalidError('commonName must be a string of 1 to 64 characters');
    }
    const policy = resolvePolicy(options);
    const validityDays = checkDays('validityDays', options.validityDays, 3650, MAX_CA_DAYS);
    const algorithm = options.keyAlgorithm ?? 'ECDSA-P256';
    const spec = keyAlgorithmSpec(algorithm);
    const [issuer, keys] = await Promise.all([loadX509Issuer(), generateKeyPair(policy.crypto, spec)]);
    const now = policy.clock();
    const der = await issuer.createRootCertificate({
      crypto: policy.crypto,
      keys,
      signingAlgorithm: spec.sign,
      serialNumber: randomSerial(),
      commonName: options.commonName,
      organization: options.organization,
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(now + validityDays * DAY_MS),
    });
    const cert = parseCertificate(der);
    return new CertificateAuthority({
      cert,
      certPem: derToPem(der, 'CERTIFICATE'),
      chainPems: [],
      signingKey: keys.privateKey,
      signingAlgorithm: spec.sign,
      signatureKind: signatureKindOf(algorithm),
      subjectKeyId: cert.subjectKeyId ?? keyIdentifier(cert.subjectPublicKey),
      constraints: [],
      pathLength: undefined,
      policy,
    });
  }

  /**
   * Loads an existing CA (e.g. the organisation's own). `certPem` is the CA certificate, optionally followed
   * by its issuer chain; `keyPem` is its private key (PKCS#8, SEC1 or PKCS#1, unencrypted).
   */
  static async load(certPem: string, keyPem: string, options?: LeafPolicy): Promise<CertificateAuthority> {
    const policy = resolvePolicy(options);
    if (typeof certPem !== 'string') throw new CaCertificateInvalidError('certificate PEM must be a string');
    if (typeof keyPem !== 'string') throw new CaKeyInvalidError('private key PEM must be a string');
    const blocks = splitCertificates(certPem);
    if (blocks.length === 0) throw new CaCertificateInvalidError('no PEM "CERTIFICATE" block found');
    const parsed: Array<{ node: NodeX509Certificate; facts: CertificateFacts; pem: string }> = [];
    for (const pem of blocks) {
      try {
        const node = new NodeX509Certificate(pem);
        parsed.push({ node, facts: parseCertificate(new Uint8Array(node.raw)), pem: `${pem}\n` });
      } catch (error) {
        throw new CaCertificateInvalidError('certificate PEM does not contain a valid X.509 certificate', {
          cause: error,
        });
      }
    }
    const own = parsed[0];
    if (own === undefined) throw new CaCertificateInvalidError('no certificate found');
    const basic = own.facts.basicConstraints;
    if (!own.node.ca || basic === null || !basic.ca) {
      throw new CaNotAuthorityError('certificate is not a CA (basicConstraints cA is not TRUE)');
    }
    if (own.facts.keyCertSign === false) {
      throw new CaNotAuthorityError('certificate key usage does not include keyCertSign');
    }
    const now = policy.clock();
    const { notBefore, notAfter } = own.facts;
    if (now < notBefore.getTime() || now >= notAfter.getTime()) {
      throw new CaExpiredError(
        `CA certificate is valid from ${notBefore.toISOString()} to ${notAfter.toISOString()}`,
      );
    }
    let keyObject: KeyObject;
    try {
      keyObject = createPrivateKey({ key: keyPem, format: 'pem' });
    } catch {
      // The parser's message is dropped on purpose: it must never echo key material.
      throw new CaKeyInvalidError('private key PEM is not a parsable unencrypted private key');
    }
    if (!own.node.checkPrivateKey(keyObject)) throw new CaKeyMismatchError();
    const algorithm = algorithmOfKey(keyObject);
    const spec = keyAlgorithmSpec(algorithm);
    const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' });
    const importParams =
      'namedCurve' in spec.generate ? spec.generate : { name: spec.generate.name, hash: spec.generate.hash };
    const signingKey = await policy.crypto.subtle.importKey('pkcs8', pkcs8, importParams, true, ['sign']);
    const subjectKeyId = own.facts.subjectKeyId ?? keyIdentifier(own.facts.subjectPublicKey);
    const constraints: NameConstraintSet[] = [];
    for (const item of parsed) {
      if (item.facts.nameConstraints !== null)
        constraints.push(readNameConstraints(item.facts.nameConstraints));
    }
    return new CertificateAuthority({
      cert: own.facts,
      certPem: own.pem,
      // A self-signed root in the bundle is dropped: clients must trust it out of band, never get it sent.
      chainPems: parsed
        .slice(1)
        .filter((item) => item.node.issuer !== item.node.subject)
        .map((item) => item.pem),
      signingKey,
      signingAlgorithm: spec.sign,
      signatureKind: signatureKindOf(algorithm),
      subjectKeyId,
      constraints,
      pathLength: basic.pathLength,
      policy,
    });
  }

  /**
   * Loads a CA saved by `saveToDir` (or any directory holding a certificate and key PEM file).
   * File problems reject with CaFileError (HTTPMESH_CA_FILE); content problems as `load` does.
   */
  static async loadFromDir(dir: string, options?: LeafPolicy & CaFileNames): Promise<CertificateAuthority> {
    const files = caFilesIn(dir, options);
    const [certPem, keyPem] = await Promise.all([readTextFile(files.certPath), readTextFile(files.keyPath)]);
    return CertificateAuthority.load(certPem, keyPem, options);
  }

  /**
   * Writes the certificate (with chain) with mode 0644 and the private key with mode 0600, each atomically,
   * into `dir` (created with mode 0700 if missing). Resolves to the two paths.
   */
  async saveToDir(dir: string, names?: CaFileNames): Promise<CaFiles> {
    const files = caFilesIn(dir, names);
    const pem = await this.toPem();
    await ensureDirectory(dir);
    await writeFileWithMode(files.keyPath, pem.keyPem, KEY_FILE_MODE);
    await writeFileWithMode(files.certPath, pem.certPem, CERT_FILE_MODE);
    return files;
  }

  /** This CA's certificate alone (what clients trust, for a root CA). */
  get certPem(): string {
    return this.#state.certPem;
  }

  /** Certificates above this CA that a server sends after its leaf (empty for a root CA). */
  get chainPems(): readonly string[] {
    return this.#state.chainPems;
  }

  get subject(): string {
    return this.#state.cert.subject;
  }

  get notBefore(): Date {
    return this.#state.cert.notBefore;
  }

  get notAfter(): Date {
    return this.#state.cert.notAfter;
  }

  get serialNumber(): string {
    return this.#state.cert.serialNumber;
  }

  /** True when the certificate (or one above it) carries X.509 name constraints. */
  get constrained(): boolean {
    return this.#state.constraints.length > 0;
  }

  stats(): CaStats {
    const cache = this.#cache.stats();
    return {
      leavesIssued: this.#leavesIssued,
      cacheSize: cache.size,
      cacheHits: cache.hits,
      cacheMisses: cache.misses,
    };
  }

  /** Exports certificate (plus chain) and PKCS#8 private key. Handle the key with care; see saveToDir. */
  async toPem(): Promise<CaPem> {
    const der = await this.#state.policy.crypto.subtle.exportKey('pkcs8', this.#state.signingKey);
    return {
      certPem: this.#state.certPem + this.#state.chainPems.join(''),
      keyPem: derToPem(der, 'PRIVATE KEY'),
    };
  }

  /** Throws CaNameNotPermittedError / CaHostnameInvalidError if this CA cannot sign for the name. */
  assertCanIssue(hostname: string): void {
    assertNamePermitted(this.#state.constraints, normalizeHostname(hostname));
  }

  /**
   * Mints a leaf for the given DNS names and/or IP addresses, signed with the shared leaf key.
   * Valid from one hour ago (tolerates client clock skew) for leafValidityDays (<= 47), never past the CA.
   */
  async issueLeaf(hostnames: readonly string[]): Promise<IssuedLeaf> {
    if (!Array.isArray(hostnames) || hostnames.length === 0) {
      throw new CaOptionsInvalidError('issueLeaf needs at least one hostname');
    }
    if (hostnames.length > 100) throw new CaOptionsInvalidError('issueLeaf accepts at most 100 hostnames');
    const names: NormalizedName[] = [];
    const seen = new Set<string>();
    for (const hostname of hostnames) {
      const name = normalizeHostname(hostname);
      assertNamePermitted(this.#state.constraints, name);
      if (!seen.has(name.value)) {
        seen.add(name.value);
        names.push(name);
      }
    }
    const leafKey = await this.#getLeafKey();
    return this.#signLeaf(names, leafKey);
  }

  /**
   * Issues an mTLS client certificate for a mesh node: EKU clientAuth, keyUsage digitalSignature, CN = node id,
   * URI SAN `spiffe://httpmesh/node/<id>` (plus `uris`). Unlike server leaves, every client certificate gets its
   * own key pair, because the key is the node's identity. `chainPem` is the certificate followed by the
   * intermediates up to (excluding) the root: what a TLS client should present.
   */
  async issueClientLeaf(options: IssueClientLeafOptions): Promise<IssuedClientLeaf> {
    const state = this.#state;
    const nodeId = options?.nodeId;
    if (!isMeshNodeId(nodeId)) {
      throw new CaOptionsInvalidError(
        'nodeId must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit',
      );
    }
    const extraUris = options.uris ?? [];
    if (!Array.isArray(extraUris) || extraUris.length > 16) {
      throw new CaOptionsInvalidError('uris must be an array of at most 16 absolute URIs');
    }
    for (const uri of extraUris) {
      if (typeof uri !== 'string' || uri.length > 2048 || !ABSOLUTE_URI.test(uri)) {
        throw new CaOptionsInvalidError(`uris: ${JSON.stringify(uri)} is not an absolute URI`);
      }
    }
    const validityDays = checkDays('validityDays', options.validityDays, 30, MAX_CLIENT_DAYS);
    const keyAlgorithm = options.keyAlgorithm ?? 'ECDSA-P256';
    if (keyAlgorithm !== 'ECDSA-P256' && keyAlgorithm !== 'RSA-2048') {
      throw new CaOptionsInvalidError(`unsupported keyAlgorithm ${JSON.stringify(keyAlgorithm)}`);
    }
    const spec = keyAlgorithmSpec(keyAlgorithm);
    const { policy } = state;
    const [issuer, keys] = await Promise.all([loadX509Issuer(), generateKeyPair(policy.crypto, spec)]);
    // Whole seconds, so the returned dates equal the encoded ones.
    const now = Math.floor(policy.clock() / 1000) * 1000;
    const notBefore = new Date(now - HOUR_MS);
    const notAfter = new Date(Math.min(now + validityDays * DAY_MS, state.cert.notAfter.getTime()));
    const spiffeId = spiffeNodeUri(nodeId);
    const serialNumber = randomSerial();
    const der = await issuer.createClientCertificate({
      ...issuerParams(state, policy.crypto),
      publicKey: keys.publicKey,
      serialNumber,
      nodeId,
      uris: [spiffeId, ...extraUris],
      notBefore,
      notAfter,
    });
    const pkcs8 = await policy.crypto.subtle.exportKey('pkcs8', keys.privateKey);
    const certPem = derToPem(der, 'CERTIFICATE');
    return {
      certPem,
      chainPem: certPem + this.#leafChainSuffix,
      keyPem: derToPem(pkcs8, 'PRIVATE KEY'),
      notBefore,
      notAfter,
      serialNumber,
      spiffeId,
    };
  }

  /**
   * A TLS secure context for an SNI servername (or, for clients without SNI, the original destination IP).
   * Cached in a bounded LRU; concurrent first requests share one mint; renewed before expiry.
   */
  secureContextFor(servername: string): Promise<SecureContext> {
    return this.#cache.get(servername);
  }

  /**
   * Creates an intermediate CA signed by this one, limited by X.509 name constraints to `permittedDomains`
   * (and `permittedIpRanges`; without them, no IP address at all). Its path length is 0: it can only sign leaves.
   */
  async issueIntermediate(options: IssueIntermediateOptions): Promise<CertificateAuthority> {
    const state = this.#state;
    if (state.pathLength !== undefined && state.pathLength < 1) {
      throw new CaNotAuthorityError('this CA has pathLenConstraint 0 and cannot issue intermediate CAs');
    }
    if (!Array.isArray(options?.permittedDomains) || options.permittedDomains.length === 0) {
      throw new CaOptionsInvalidError('permittedDomains must be a non-empty array');
    }
    const domains = options.permittedDomains.map(normalizeDomainConstraint);
    const ipRanges = (options.permittedIpRanges ?? []).map(validateIpRange);
    // An intermediate must not widen what its issuer may sign for.
    for (const domain of domains) {
      const bare = domain.charCodeAt(0) === 46 ? domain.slice(1) : domain;
      assertNamePermitted(state.constraints, { kind: 'dns', value: bare });
    }
    const policy = resolvePolicy(options, state.policy);
    const now = policy.clock();
    const validityDays = checkDays('validityDays', options.validityDays, 365, MAX_CA_DAYS);
    const notAfter = Math.min(now + validityDays * DAY_MS, state.cert.notAfter.getTime());
    const algorithm =
      options.keyAlgorithm ?? algorithmOfKey(new NodeX509Certificate(state.certPem).publicKey);
    const spec = keyAlgorithmSpec(algorithm);
    const [issuer, keys] = await Promise.all([loadX509Issuer(), generateKeyPair(policy.crypto, spec)]);
    const commonName = options.commonName ?? `${firstCommonName(state.cert)} intermediate`.slice(0, 64);
    const der = await issuer.createIntermediateCertificate({
      ...issuerParams(state, policy.crypto),
      publicKey: keys.publicKey,
      serialNumber: randomSerial(),
      commonName,
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(notAfter),
      permittedDomains: domains,
      permittedIpRanges: ipRanges,
    });
    const cert = parseCertificate(der);
    const own = cert.nameConstraints === null ? null : readNameConstraints(cert.nameConstraints);
    return new CertificateAuthority({
      cert,
      certPem: derToPem(der, 'CERTIFICATE'),
      chainPems: isSelfSigned(state.cert) ? [...state.chainPems] : [state.certPem, ...state.chainPems],
      signingKey: keys.privateKey,
      signingAlgorithm: spec.sign,
      signatureKind: signatureKindOf(algorithm),
      subjectKeyId: cert.subjectKeyId ?? keyIdentifier(cert.subjectPublicKey),
      constraints: own === null ? state.constraints : [own, ...state.constraints],
      pathLength: 0,
      policy,
    });
  }

  toString(): string {
    return `CertificateAuthority(${this.#state.cert.subject})`;
  }

  toJSON(): { subject: string; serialNumber: string; notAfter: string; certPem: string } {
    return {
      subject: this.subject,
      serialNumber: this.serialNumber,
      notAfter: this.notAfter.toISOString(),
      certPem: this.certPem,
    };
  }

  [inspect.custom](): string {
    return `CertificateAuthority { subject: ${JSON.stringify(this.subject)}, notAfter: ${this.notAfter.toISOString()}, constrained: ${this.constrained} }`;
  }

  #getLeafKey(): Promise<LeafKey> {
    if (this.#leafKey === null) {
      const pending = this.#generateLeafKey();
      this.#leafKey = pending;
      // A failed generation must not poison every later mint.
      pending.catch(() => {
        if (this.#leafKey === pending) this.#leafKey = null;
      });
    }
    return this.#leafKey;
  }

  async #generateLeafKey(): Promise<LeafKey> {
    const { policy, subjectKeyId, cert, signatureKind } = this.#state;
    const spec = keyAlgorithmSpec(policy.leafKeyAlgorithm);
    const keys = await generateKeyPair(policy.crypto, spec);
    const [pkcs8, spki] = await Promise.all([
      policy.crypto.subtle.exportKey('pkcs8', keys.privateKey),
      policy.crypto.subtle.exportKey('spki', keys.publicKey),
    ]);
    const spkiBytes = new Uint8Array(spki);
    // Everything but serial, validity, CN and SAN is identical for every leaf, so it is encoded once per CA.
    const extensions = leafExtensions(
      policy.leafKeyAlgorithm === 'RSA-2048',
      keyIdentifier(subjectPublicKeyOf(spkiBytes)),
      subjectKeyId,
    );
    return {
      keyPem: derToPem(pkcs8, 'PRIVATE KEY'),
      template: {
        signature: signatureKind,
        issuer: cert.subjectDer,
        subjectPublicKeyInfo: spkiBytes,
        extensions,
      },
    };
  }

  async #signLeaf(names: readonly NormalizedName[], leafKey: LeafKey): Promise<IssuedLeaf> {
    const state = this.#state;
    // Certificates carry whole seconds; truncating keeps the returned dates equal to the encoded ones.
    const now = Math.floor(state.policy.clock() / 1000) * 1000;
    const notBefore = new Date(now - HOUR_MS);
    const notAfter = new Date(Math.min(now + state.policy.leafValidityMs, state.cert.notAfter.getTime()));
    // CN is the first DNS name (X.520 caps it at 64 characters; the SAN carries the real names anyway). Never an
    // IP: verifiers such as OpenSSL check a CN against dNSName constraints, which an address always violates.
    let commonName = '';
    for (const name of names) {
      if (name.kind === 'dns' && name.value.length <= 64) {
        commonName = name.value;
        break;
      }
    }
    const serialNumber = randomSerial();
    const tbs = encodeTbsCertificate(leafKey.template, {
      serialHex: serialNumber,
      notBefore,
      notAfter,
      commonName,
      names,
    });
    const signature = await state.policy.crypto.subtle.sign(state.signingAlgorithm, state.signingKey, tbs);
    const der = encodeCertificate(leafKey.template.signature, tbs, new Uint8Array(signature));
    this.#leavesIssued++;
    const certPem = derToPem(der, 'CERTIFICATE');
    return {
      certPem,
      chainPem: certPem + this.#leafChainSuffix,
      keyPem: leafKey.keyPem,
      notBefore,
      notAfter,
      serialNumber,
    };
  }

  async #mintContext(servername: string): Promise<MintedContext> {
    const name = normalizeHostname(servername);
    assertNamePermitted(this.#state.constraints, name);
    const leafKey = await this.#getLeafKey();
    const leaf = await this.#signLeaf([name], leafKey);
    const context = createSecureContext({
      ...this.#state.policy.secureContextOptions,
      key: leaf.keyPem,
      cert: leaf.chainPem,
    });
    const expiresAt = leaf.notAfter.getTime();
    const lifetime = expiresAt - leaf.notBefore.getTime();
    return {
      context,
      renewAt: expiresAt - Math.min(this.#state.policy.renewBeforeMs, lifetime / 3),
      expiresAt,
    };
  }
}

function firstCommonName(cert: CertificateFacts): string {
  return cert.subjectAttributes.find((attribute) => attribute.type === 'CN')?.value ?? 'httpmesh';
}

function isSelfSigned(cert: CertificateFacts): boolean {
  return cert.subject === cert.issuer;
}
