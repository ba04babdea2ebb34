import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { access, copyFile, mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import type { Logger } from 'pino';
import { ControlPlaneCaError, UsageError } from './errors.js';

const run = promisify(execFile);

/** Loads the CA in `dir`, or creates and saves one when the directory holds none. */
export async function loadOrCreateCa(dir: string, log: Logger): Promise<CertificateAuthority> {
  try {
    await access(join(dir, 'ca.crt'));
  } catch {
    const ca = await CertificateAuthority.create({ commonName: 'httpmesh sidecar CA' });
    const files = await ca.saveToDir(dir);
    log.info({ event: 'ca.created', cert: files.certPath, subject: ca.subject }, 'created mesh CA');
    return ca;
  }
  const ca = await CertificateAuthority.loadFromDir(dir);
  log.info({ event: 'ca.loaded', dir, subject: ca.subject, notAfter: ca.notAfter }, 'loaded mesh CA');
  return ca;
}

/** Written beside ca.crt when the CA is an intermediate: the root clients must trust. */
export const ROOT_CERT_FILE = 'root.crt';

/** The certificate clients trust: the control plane's root for a fetched intermediate, else ca.crt. */
export async function trustAnchorPath(caDir: string): Promise<string> {
  const root = join(caDir, ROOT_CERT_FILE);
  try {
    await access(root);
    return root;
  } catch {
    return join(caDir, 'ca.crt');
  }
}

export interface IntermediateRequest {
  /** Control plane HTTP API base URL. */
  readonly api: string;
  readonly token: string | undefined;
  readonly nodeId: string;
  /** Intercept domains the intermediate is constrained to (`*.x` or exact names). */
  readonly domains: readonly string[];
}

/**
 * Asks the control plane (POST /api/sidecar-certificates, docs/control-plane-api.yaml) for an
 * intermediate CA name-constrained to the intercept domains, and saves it as the mesh CA: ca.crt
 * (intermediate + chain), ca.key, and root.crt (the control plane's root, which clients trust).
 * The mTLS client bundle the same call returns is saved too (node.crt/node.key/control-plane-ca.crt).
 */
export async function fetchIntermediateCa(
  dir: string,
  request: IntermediateRequest,
  log: Logger,
): Promise<CertificateAuthority> {
  // Name constraints are DNS suffixes: `*.partner.com` and `partner.com` both become `partner.com`.
  const permitted = [...new Set(request.domains.map((d) => d.toLowerCase().replace(/^\*\./, '')))].sort();
  if (permitted.length === 0) {
    throw new ControlPlaneCaError('no intercept domains to constrain the intermediate to (give --rules)');
  }
  const url = `${request.api}/api/sidecar-certificates`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(request.token === undefined ? {} : { authorization: `Bearer ${request.token}` }),
      },
      body: JSON.stringify({ nodeId: request.nodeId, interceptDomains: permitted }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (e) {
    throw new ControlPlaneCaError(`cannot reach ${url}: ${(e as Error).message}`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ControlPlaneCaError(`${url} answered ${response.status} with a body that is not JSON`);
  }
  if (response.status !== 201) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    throw new ControlPlaneCaError(
      `${url} answered ${response.status}: ${String(error?.code ?? '')} ${String(error?.message ?? '')}`.trim(),
    );
  }
  const bundle = body as {
    certPem?: unknown;
    keyPem?: unknown;
    caPem?: unknown;
    interceptionCa?: { chainPem?: unknown; keyPem?: unknown };
  } | null;
  const chainPem = bundle?.interceptionCa?.chainPem;
  const keyPem = bundle?.interceptionCa?.keyPem;
  const rootPem = bundle?.caPem;
  if (typeof chainPem !== 'string' || typeof keyPem !== 'string' || typeof rootPem !== 'string') {
    throw new ControlPlaneCaError(`${url}: reply lacks interceptionCa.chainPem/keyPem or caPem`);
  }
  let ca: CertificateAuthority;
  try {
    ca = await CertificateAuthority.load(chainPem, keyPem);
    new X509Certificate(rootPem);
  } catch (e) {
    throw new ControlPlaneCaError(`${url}: the returned CA does not load: ${(e as Error).message}`);
  }
  await ca.saveToDir(dir);
  await writeFile(join(dir, ROOT_CERT_FILE), rootPem, { mode: 0o644 });
  if (typeof bundle?.certPem === 'string' && typeof bundle.keyPem === 'string') {
    await writeFile(join(dir, 'node.crt'), bundle.certPem, { mode: 0o644 });
    await writeFile(join(dir, 'node.key'), bundle.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'control-plane-ca.crt'), rootPem, { mode: 0o644 });
  }
  log.info(
    { event: 'ca.fetched', api: request.api, permitted, subject: ca.subject, notAfter: ca.notAfter },
    'intermediate CA issued by the control plane',
  );
  return ca;
}

export const TRUST_STORES = ['system', 'java', 'env'] as const;
export type TrustStore = (typeof TRUST_STORES)[number];

/** Where the Debian system bundle lives (update-ca-certificates writes it). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface TrustResult {
  readonly store: TrustStore;
  readonly done: boolean;
  readonly detail: string;
}

/**
 * Installs trust for the CA certificate the way each ecosystem expects:
 *  - system: /usr/local/share/ca-certificates + update-ca-certificates (curl, Python ssl, Go, OpenSSL);
 *  - java: keytool into the JDK's cacerts (skipped with a note when no keytool is installed);
 *  - env: an env file for processes that ignore the system store (NODE_EXTRA_CA_CERTS) or are pointed
 *    at a bundle (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE): a bundle of system roots + ours.
 */
export async function installTrust(
  caDir: string,
  stores: readonly string[],
  trustEnvFile: string | undefined,
  log: Logger,
  javaTruststore?: string,
): Promise<TrustResult[]> {
  for (const s of stores) {
    if (!(TRUST_STORES as readonly string[]).includes(s)) {
      throw new UsageError(`unknown trust store ${JSON.stringify(s)} (known: ${TRUST_STORES.join(', ')})`);
    }
  }
  const certPath = await trustAnchorPath(caDir);
  const pem = await readFile(certPath, 'utf8');
  const cert = new X509Certificate(pem);
  const tag = createHash('sha256').update(cert.raw).digest('hex').slice(0, 12);
  const results: TrustResult[] = [];
  if (stores.includes('system')) {
    const target = `/usr/local/share/ca-certificates/httpmesh-${tag}.crt`;
    await mkdir('/usr/local/share/ca-certificates', { recursive: true });
    await copyFile(certPath, target);
    await run('update-ca-certificates', []);
    results.push({ store: 'system', done: true, detail: target });
  }
  if (stores.includes('java')) {
    const alias = `httpmesh-${tag}`;
    // -cacerts: the JDK's own store; -keystore FILE: a store the user points Java at
    // (-Djavax.net.ssl.trustStore), seeded with the JDK's roots so other sites keep working.
    const store =
      javaTruststore === undefined ? ['-cacerts'] : ['-keystore', javaTruststore, '-storetype', 'PKCS12'];
    try {
      if (javaTruststore !== undefined) await seedJavaTruststore(javaTruststore);
      const listed = await run('keytool', [
        '-list',
        ...store,
        '-storepass',
        'changeit',
        '-alias',
        alias,
      ]).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') throw e;
          return false;
        },
      );
      if (!listed) {
        await run('keytool', [
          '-importcert',
          ...store,
          '-storepass',
          'changeit',
          '-noprompt',
          '-alias',
          alias,
          '-file',
          certPath,
        ]);
      }
      results.push({
        store: 'java',
        done: true,
        detail: `${javaTruststore ?? 'cacerts'} alias ${alias}`,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      results.push({ store: 'java', done: false, detail: 'keytool not installed; Java trust skipped' });
    }
  }
  if (stores.includes('env')) {
    const bundle = join(caDir, 'trust-bundle.pem');
    let system = '';
    try {
      system = await readFile(SYSTEM_BUNDLE, 'utf8');
    } catch {
      // no system bundle: the mesh CA alone
    }
    // Skip ours when update-ca-certificates already put it in the system bundle.
    const combined = system.includes(pem.trim())
      ? system
      : `${system}${system.endsWith('\n') || !system ? '' : '\n'}${pem}`;
    await writeFile(bundle, combined, { mode: 0o644 });
    const file = trustEnvFile ?? join(caDir, 'trust.env');
    const lines = [
      '# Generated by httpmesh-sidecar ca trust: source it (or pass it as an env file) to trust the mesh CA.',
      `NODE_EXTRA_CA_CERTS=${certPath}`,
      `SSL_CERT_FILE=${bundle}`,
      `REQUESTS_CA_BUNDLE=${bundle}`,
      `CURL_CA_BUNDLE=${bundle}`,
      // Java reads no env bundle; JAVA_TOOL_OPTIONS points every JVM at the keystore written above.
      ...(javaTruststore === undefined
        ? []
        : [
            `JAVA_TOOL_OPTIONS=-Djavax.net.ssl.trustStore=${javaTruststore} -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=PKCS12`,
          ]),
      '',
    ];
    await writeFile(file, lines.join('\n'), { mode: 0o644 });
    results.push({ store: 'env', done: true, detail: file });
  }
  for (const r of results) log.info({ event: 'ca.trust', ...r }, 'trust installed');
  return results;
}

/** Creates `path` as a PKCS#12 copy of the JDK's cacerts (found beside keytool) when it does not exist. */
async function seedJavaTruststore(path: string): Promise<void> {
  try {
    await access(path);
    return;
  } catch {
    // create it below
  }
  let cacerts: string | undefined;
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    try {
      const keytool = await realpath(join(dir, 'keytool'));
      cacerts = join(dirname(dirname(keytool)), 'lib', 'security', 'cacerts');
      await access(cacerts);
      break;
    } catch {
      cacerts = undefined;
    }
  }
  await mkdir(dirname(path), { recursive: true });
  if (cacerts === undefined) return; // keytool creates an empty store: only the mesh CA is trusted
  await run('keytool', [
    '-importkeystore',
    '-noprompt',
    '-srckeystore',
    cacerts,
    '-srcstorepass',
    'changeit',
    '-destkeystore',
    path,
    '-deststoretype',
    'PKCS12',
    '-deststorepass',
    'changeit',
  ]);
}
