import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CaFileError } from './errors.js';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const KEY_FILE_MODE = 0o600;
export const CERT_FILE_MODE = 0o644;

/** Where a saved CA lives. */
export interface CaFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface CaFileNames {
  /** Default "ca.crt". */
  readonly certFileName?: string;
  /** Default "ca.key". */
  readonly keyFileName?: string;
}

export function caFilesIn(dir: string, names?: CaFileNames): CaFiles {
  return {
    certPath: join(dir, names?.certFileName ?? CA_CERT_FILE),
    keyPath: join(dir, names?.keyFileName ?? CA_KEY_FILE),
  };
}

/**
 * Writes a file atomically with an exact mode: created exclusively under a random temporary name with the
 * mode (so the content is never readable by others, whatever the umask), chmod-ed (umask may have narrowed
 * it), then renamed over the target.
 */
export async function writeFileWithMode(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new CaFileError(path, `cannot write (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      cause: error,
    });
  }
}

export async function ensureDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new CaFileError(
      dir,
      `cannot create directory (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        cause: error,
      },
    );
  }
}

export async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new CaFileError(path, `cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      cause: error,
    });
  }
}
