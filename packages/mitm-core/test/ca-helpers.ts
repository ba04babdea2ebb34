import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
export const inCi = process.env['CI'] === 'true';

/** Runs `openssl verify` on a leaf with a trusted root and optional untrusted intermediates. */
export function opensslVerify(
  rootPem: string,
  leafPem: string,
  untrustedPem?: string,
  extraArgs: readonly string[] = [],
): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-ca-verify-'));
  try {
    writeFileSync(join(dir, 'root.pem'), rootPem);
    writeFileSync(join(dir, 'leaf.pem'), leafPem);
    const args = ['verify', '-CAfile', join(dir, 'root.pem'), ...extraArgs];
    if (untrustedPem !== undefined) {
      writeFileSync(join(dir, 'untrusted.pem'), untrustedPem);
      args.push('-untrusted', join(dir, 'untrusted.pem'));
    }
    args.push(join(dir, 'leaf.pem'));
    const result = spawnSync('openssl', args, { encoding: 'utf8' });
    return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl x509 -noout -text` of a PEM certificate. */
export function opensslText(certPem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: certPem, encoding: 'utf8' });
}

export const OPENSSL_EC_P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] as const;

/**
 * A self-signed certificate made by OpenSSL (`req -x509`), i.e. a CA as an organisation would bring it.
 * `extensions` become `-addext` values; `extraArgs` go before them (e.g. `-set_serial`, `-utf8`).
 */
export function opensslSelfSigned(options: {
  subject: string;
  keyArgs?: readonly string[];
  days?: number;
  extensions?: readonly string[];
  extraArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
}): { certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-ca-openssl-'));
  try {
    const keyPath = join(dir, 'k.pem');
    const certPath = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        ...(options.keyArgs ?? OPENSSL_EC_P256),
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-subj',
        options.subject,
        '-days',
        String(options.days ?? 30),
        ...(options.extraArgs ?? []),
        ...(options.extensions ?? []).flatMap((extension) => ['-addext', extension]),
      ],
      { stdio: 'ignore', ...(options.env ? { env: options.env } : {}) },
    );
    return { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
