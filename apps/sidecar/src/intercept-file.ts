import { randomBytes } from 'node:crypto';
import { type FSWatcher, mkdirSync, watch } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { InterceptFileError, RulesFileError } from './errors.js';
import { type InterceptRuleSpec, validateRules } from './rules.js';

/**
 * The hand-over between the unprivileged proxy and the privileged capture: `run` (uid 1337, no
 * CAP_NET_ADMIN) writes the intercept rules in force, from a rules file or the control plane, to this
 * file; `init-net --follow` (root) watches it and moves dnsmasq/ipset along. Shape:
 * `{ "version": "...", "writtenAt": "ISO time", "intercept": [{ name, domain, action, upstreamTlsVerify }] }`.
 */
export interface InterceptFileContent {
  readonly version: string;
  readonly intercept: readonly InterceptRuleSpec[];
}

/** Writes atomically (temporary file + rename) so the follower never reads half a file. */
export async function writeInterceptFile(path: string, content: InterceptFileContent): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const body = {
    version: content.version,
    writtenAt: new Date().toISOString(),
    intercept: content.intercept,
  };
  try {
    await writeFile(temporary, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644 });
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}

/** Parses and validates the file's text (the same intercept-rule validation as a rules file). */
export function parseInterceptFile(text: string, path: string): InterceptFileContent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InterceptFileError(path, `not JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InterceptFileError(path, 'expected an object with version and intercept');
  }
  const { version, intercept, writtenAt, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new InterceptFileError(path, `unknown field ${unknown[0]}`);
  if (typeof version !== 'string' || version.length === 0) {
    throw new InterceptFileError(path, 'version: expected a non-empty string');
  }
  if (writtenAt !== undefined && typeof writtenAt !== 'string') {
    throw new InterceptFileError(path, 'writtenAt: expected a string');
  }
  try {
    return { version, intercept: validateRules({ intercept }, path, version).intercept };
  } catch (e) {
    if (e instanceof RulesFileError) throw new InterceptFileError(path, `${e.field}: ${e.message}`);
    throw e;
  }
}

/** Reads the file; null when it does not exist (yet). */
export async function readInterceptFile(path: string): Promise<InterceptFileContent | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new InterceptFileError(path, `cannot read: ${(e as Error).message}`);
  }
  return parseInterceptFile(text, path);
}

export interface InterceptFileFollower {
  close(): void;
}

/**
 * Calls `onChange` with each new valid version of the file (the directory is watched: the writer
 * replaces the file by rename). Changes are handled one at a time, in order; an invalid or unreadable
 * version goes to `onError` and the caller keeps what it applied last.
 */
export function followInterceptFile(
  path: string,
  lastVersion: string | null,
  onChange: (content: InterceptFileContent) => Promise<void>,
  onError: (error: Error) => void,
  debounceMs = 50,
): InterceptFileFollower {
  let applied = lastVersion;
  let timer: NodeJS.Timeout | null = null;
  let chain = Promise.resolve();
  const name = basename(path);
  const check = async () => {
    try {
      const content = await readInterceptFile(path);
      if (content === null || content.version === applied) return;
      await onChange(content);
      applied = content.version;
    } catch (e) {
      onError(e as Error);
    }
  };
  // The follower may start before the proxy first writes: watch the directory from the start.
  mkdirSync(dirname(path), { recursive: true });
  const watcher: FSWatcher = watch(dirname(path), (_event, filename) => {
    if (filename !== null && filename !== name) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      chain = chain.then(check);
    }, debounceMs);
  });
  // A version written between the caller's first read and the watch starting is not missed.
  chain = chain.then(check);
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
}
