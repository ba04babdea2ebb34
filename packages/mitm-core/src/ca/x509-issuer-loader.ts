/**
 * Lazy import of x509-issuer.ts (@peculiar/x509 and its dependencies, ~16 MB resident): loaded only when a
 * root, an intermediate or a client certificate is created; loading a CA and minting leaves need none of it.
 * The first call pays the import (tens of milliseconds); later ones reuse it.
 */
import { CaIssuerUnavailableError } from './errors.js';

export type X509Issuer = typeof import('./x509-issuer.js');
/** How the issuer module is imported; replaceable in tests only (not exported from the package). */
export type X509IssuerImport = () => Promise<X509Issuer>;

const importX509Issuer: X509IssuerImport = () => import('./x509-issuer.js');
let currentImport: X509IssuerImport = importX509Issuer;
let issuer: Promise<X509Issuer> | undefined;

/**
 * Resolves with the issuer module, importing it on first use. A failed import is not kept: a transient cause
 * (EMFILE, a package being reinstalled) would otherwise fail every later CA creation for the life of the
 * process; the next call imports again. Node's own loader still keeps a failure deeper in the module graph
 * (a dependency of a dependency that failed to resolve, seen on Node 20.20): no retry here cures that one,
 * and the error's `cause` names the module.
 */
export function loadX509Issuer(): Promise<X509Issuer> {
  if (issuer !== undefined) return issuer;
  const loading = startImport(currentImport).catch((cause: unknown) => {
    // Dropped unless the test seam replaced it meanwhile.
    if (issuer === loading) issuer = undefined;
    throw new CaIssuerUnavailableError(
      `could not load the certificate issuer (@peculiar/x509): ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  });
  issuer = loading;
  return loading;
}

function startImport(load: X509IssuerImport): Promise<X509Issuer> {
  try {
    return load();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Test seam: imports the issuer with `load` from now on (the real import when omitted) and forgets an
 * issuer already loaded or loading, so the next call goes through `load`.
 */
export function setX509IssuerImportForTesting(load?: X509IssuerImport): void {
  currentImport = load ?? importX509Issuer;
  issuer = undefined;
}
