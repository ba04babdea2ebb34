/**
 * mTLS credentials kept in files (a CA bundle, a client certificate and its key) that another tool renews:
 * cert-manager, SPIRE helpers, a Kubernetes secret (its `..data` symlink swap), a cron job. A client reads
 * them through {@link TlsFileWatcher.tls}, and the watcher reconnects it when renewed files pass the checks.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { RuleSyncClientTls } from './client.js';
import { CredentialsUnavailableError } from './errors.js';

export interface TlsFilePaths {
  /** PEM bundle of the CA(s) the server certificate must chain to. */
  readonly ca: string;
  /** PEM client certificate (first) and its chain. */
  readonly cert: string;
  /** PEM private key of the certificate. */
  readonly key: string;
}

/** Credentials read from the files and checked; `tls` is what the client presents. */
export interface TlsFileCredentials {
  readonly tls: RuleSyncClientTls & { readonly ca: string; readonly cert: string; readonly key: string };
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface TlsFileWatcherOptions {
  /** How often the files are stat'ed for a change (default 2,000 ms). */
  readonly pollMs?: number;
  /** `onExpiring` fires once per certificate this close to its notAfter, or past it (default 7 days). */
  readonly expiryWarningMs?: number;
  /** Renewed files passed the checks and the client reconnected with them. */
  readonly onRotated?: (credentials: TlsFileCredentials) => void;
  /** Renewed files failed a check (or the client refused them); the current credentials stay. */
  readonly onRejected?: (error: CredentialsUnavailableError) => void;
  /** The certificate in use is within `expiryWarningMs` of its notAfter (`expired`: already past it). */
  readonly onExpiring?: (credentials: TlsFileCredentials, expired: boolean) => void;
}

/** What the watcher needs of a client: RuleSyncClient's `reconnect()`. */
export interface ReconnectableClient {
  reconnect(): Promise<void>;
}

const DEFAULT_POLL_MS = 2_000;
const DEFAULT_EXPIRY_WARNING_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Reads the three files and checks that they parse and that the key belongs to the certificate (not its
 * validity period: an expired certificate at start is for the caller to judge). Throws
 * {@link CredentialsUnavailableError} saying which file is wrong.
 */
export async function readTlsFiles(paths: TlsFilePaths): Promise<TlsFileCredentials> {
  const read = (path: string): Promise<string> =>
    readFile(path, 'utf8').catch((err: Error) => {
      throw new CredentialsUnavailableError(`${path}: ${err.message}`, { cause: err });
    });
  const [ca, cert, key] = await Promise.all([read(paths.ca), read(paths.cert), read(paths.key)]);
  const parse = <T>(path: string, what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new CredentialsUnavailableError(`${path}: not a PEM ${what} (${(err as Error).message})`, {
        cause: err,
      });
    }
  };
  parse(paths.ca, 'certificate', () => new X509Certificate(ca));
  // The first certificate of the file is the node's own; any after it are its chain.
  const certificate = parse(paths.cert, 'certificate', () => new X509Certificate(cert));
  const privateKey = parse(paths.key, 'private key', () => createPrivateKey(key));
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new CredentialsUnavailableError(`${paths.key} does not match the certificate in ${paths.cert}`);
  }
  return {
    tls: { ca, cert, key },
    serialNumber: certificate.serialNumber,
    fingerprint256: certificate.fingerprint256,
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
  };
}

/** stat follows symlinks, so a Kubernetes `..data` swap or a rename over the path changes the inode. */
async function filesSignature(paths: TlsFilePaths): Promise<string> {
  const parts = await Promise.all(
    [paths.ca, paths.cert, paths.key].map((path) =>
      stat(path).then(
        (st) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
        (err: NodeJS.ErrnoException) => err.code ?? 'error',
      ),
    ),
  );
  return parts.join('|');
}

/**
 * Keeps a client's mTLS credentials current without a restart: polls the files' stat (robust against
 * symlink swaps and temp-file renames, which `fs.watch` misses), and on a change reads and checks them.
 * Good ones replace the current ones and the client reconnects with them; bad ones (half written,
 * mismatched, garbage, not valid now) are reported and the working connection keeps the current ones.
 */
export class TlsFileWatcher {
  private current: TlsFileCredentials;
  private signature: string;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private closed = false;
  private warnedFingerprint: string | undefined;
  private client: ReconnectableClient | undefined;

  private constructor(
    private readonly paths: TlsFilePaths,
    initial: TlsFileCredentials,
    signature: string,
    private readonly options: TlsFileWatcherOptions,
  ) {
    this.current = initial;
    this.signature = signature;
    this.warnIfExpiring();
  }

  /**
   * Reads and checks the files once (throws {@link CredentialsUnavailableError} when they are unusable; an
   * expired certificate only triggers `onExpiring`, so a client can still serve persisted state).
   */
  static async open(paths: TlsFilePaths, options: TlsFileWatcherOptions = {}): Promise<TlsFileWatcher> {
    // Signature first: a change racing the first read shows up as a change at the first poll.
    const signature = await filesSignature(paths);
    return new TlsFileWatcher(paths, await readTlsFiles(paths), signature, options);
  }

  /** The credentials in use. */
  get credentials(): TlsFileCredentials {
    return this.current;
  }

  /** For RuleSyncClientOptions.tls: the last credentials that passed the checks. */
  readonly tls = (): RuleSyncClientTls => this.current.tls;

  /** Starts polling; renewed credentials reconnect `client`. */
  start(client: ReconnectableClient): void {
    this.client = client;
    this.schedule();
  }

  /** Stops polling (waits for a poll in progress). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.polling;
  }

  private schedule(): void {
    if (this.closed) return;
    // A chain of timeouts, not an interval: a slow read never overlaps the next poll.
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => this.schedule());
    }, this.options.pollMs ?? DEFAULT_POLL_MS);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    const signature = await filesSignature(this.paths);
    if (signature !== this.signature && !this.closed) {
      this.signature = signature;
      await this.reload();
    }
    this.warnIfExpiring();
  }

  private async reload(): Promise<void> {
    let next: TlsFileCredentials;
    try {
      next = await readTlsFiles(this.paths);
      const now = Date.now();
      if (now < next.notBefore.getTime() || now > next.notAfter.getTime()) {
        throw new CredentialsUnavailableError(
          `${this.paths.cert} is not valid now (valid ${next.notBefore.toISOString()} to ${next.notAfter.toISOString()})`,
        );
      }
    } catch (err) {
      this.options.onRejected?.(unavailable(err));
      return;
    }
    const { ca, cert, key } = next.tls;
    const old = this.current;
    if (ca === old.tls.ca && cert === old.tls.cert && key === old.tls.key) return; // touched, not changed
    if (this.closed || this.client === undefined) return;
    this.current = next;
    try {
      await this.client.reconnect();
    } catch (err) {
      // The client refused them (e.g. a CA file gRPC cannot use): stay on the old ones.
      this.current = old;
      this.options.onRejected?.(unavailable(err));
      return;
    }
    this.options.onRotated?.(next);
  }

  private warnIfExpiring(): void {
    const { fingerprint256, notAfter } = this.current;
    if (this.warnedFingerprint === fingerprint256) return;
    if (notAfter.getTime() - Date.now() > (this.options.expiryWarningMs ?? DEFAULT_EXPIRY_WARNING_MS)) return;
    this.warnedFingerprint = fingerprint256;
    this.options.onExpiring?.(this.current, notAfter.getTime() <= Date.now());
  }
}

function unavailable(err: unknown): CredentialsUnavailableError {
  return err instanceof CredentialsUnavailableError
    ? err
    : new CredentialsUnavailableError((err as Error).message, { cause: err });
}
