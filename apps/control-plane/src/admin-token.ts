import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './errors.js';

/** Name of the file in the data directory that keeps a generated admin token across restarts. */
export const ADMIN_TOKEN_FILE = 'admin-token';

export interface StoredAdminToken {
  token: string;
  path: string;
  /** True when this call generated the token (the CLI then shows it once). */
  created: boolean;
}

// Printable ASCII without spaces: what an HTTP bearer token can carry verbatim.
const TOKEN_SHAPE = /^[\x21-\x7e]{16,512}$/;

/**
 * Reads the admin token kept in `dataDir`, or generates one and writes it with mode 0600, so a control plane
 * started without `--admin-token` keeps the same token across restarts. A token file that others can read,
 * or whose content is not a token, is refused rather than used or replaced.
 */
export function loadOrCreateAdminToken(dataDir: string): StoredAdminToken {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    return { token: readTokenFile(path), path, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString('base64url');
  try {
    // `wx`: never overwrite a token another process wrote in the meantime.
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      return { token: readTokenFile(path), path, created: false };
    throw err;
  }
  return { token, path, created: true };
}

function readTokenFile(path: string): string {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(
      `${path}: the admin token file is readable or writable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`,
    );
  }
  const token = readFileSync(path, 'utf8').trim();
  if (!TOKEN_SHAPE.test(token)) {
    throw new ConfigError(
      `${path}: not an admin token (expected 16-512 printable characters without spaces); fix or delete the file`,
    );
  }
  return token;
}
