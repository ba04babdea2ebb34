/**
 * TlsFileWatcher: mTLS credentials read from files, checked, and rotated by reconnecting the client when the
 * files change. Real openssl certificates on disk, real gRPC over mTLS on loopback port 0.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { CredentialsUnavailableError, TlsFileCredentials, TlsFilePaths } from '../src/index.js';
import { readTlsFiles, TlsFileWatcher } from '../src/index.js';
import { interceptRule, tempDir, waitFor } from './helpers.js';
import { GROUP, makeClient, onCleanup, SERVER_NAME, startServer, useMtlsPki } from './setup.js';

const mtls = useMtlsPki();
const POLL_MS = 25;

let cleanupDir: (() => void) | undefined;
afterEach(() => cleanupDir?.());

/** Writes ca/cert/key for node-1 into a fresh directory; `replace` swaps one file by rename, as renewers do. */
function credentialFiles(): {
  paths: TlsFilePaths;
  replace(name: 'cert' | 'key', content: string | Buffer): void;
} {
  const { dir, cleanup } = tempDir('tls-files');
  cleanupDir = cleanup;
  const paths = { ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') };
  const { cert, key } = mtls.pki.client('node-1');
  writeFileSync(paths.ca, mtls.pki.ca);
  writeFileSync(paths.cert, cert);
  writeFileSync(paths.key, key, { mode: 0o600 });
  return {
    paths,
    replace(name, content) {
      const temp = `${paths[name]}.tmp`;
      writeFileSync(temp, content, { mode: 0o600 });
      renameSync(temp, paths[name]);
    },
  };
}

function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (err: CredentialsUnavailableError) => err.code,
  );
}

describe('readTlsFiles', () => {
  test('reads a matching pair and reports its serial and validity', async () => {
    const { paths } = credentialFiles();
    const credentials = await readTlsFiles(paths);
    expect(credentials.tls.ca).toContain('BEGIN CERTIFICATE');
    expect(credentials.serialNumber).toMatch(/^[0-9A-F]+$/);
    expect(credentials.notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  test('missing file, garbage certificate, garbage key and a key of another certificate are refused', async () => {
    const files = credentialFiles();
    const unavailable = 'HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE';
    expect(await codeOf(readTlsFiles({ ...files.paths, ca: `${files.paths.ca}.missing` }))).toBe(unavailable);
    files.replace('key', mtls.pki.client('node-1').key);
    expect(await codeOf(readTlsFiles(files.paths))).toBe(unavailable);
    files.replace('key', 'not a key');
    expect(await codeOf(readTlsFiles(files.paths))).toBe(unavailable);
    files.replace('cert', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(await codeOf(readTlsFiles(files.paths))).toBe(unavailable);
    await expect(TlsFileWatcher.open(files.paths)).rejects.toMatchObject({ code: unavailable });
  });
});

describe('TlsFileWatcher', () => {
  test('renewed files reconnect the client with them; bad ones are rejected and the stream stays', async () => {
    const started = await startServer(mtls.serverOptions());
    const connects: string[] = [];
    started.server.on('connected', (status) => connects.push(status.node.id));
    started.server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    started.server.flush();
    const files = credentialFiles();
    const rotated: TlsFileCredentials[] = [];
    const rejected: string[] = [];
    const watcher = await TlsFileWatcher.open(files.paths, {
      pollMs: POLL_MS,
      onRotated: (credentials) => rotated.push(credentials),
      onRejected: (error) => rejected.push(error.code),
    });
    onCleanup(() => watcher.close());
    const first = watcher.credentials.serialNumber;
    const client = makeClient(started.address, {
      insecure: false,
      tls: watcher.tls,
      channelOptions: SERVER_NAME,
    });
    await client.start();
    watcher.start(client);
    await waitFor(() => client.connected && connects.length === 1, 5_000, 'first session');

    // A half-written renewal (the certificate of a new pair without its key yet): rejected, no reconnect.
    const renewed = mtls.pki.client('node-1');
    files.replace('cert', renewed.cert);
    await waitFor(() => rejected.length === 1, 5_000, 'rejection');
    expect(rejected).toEqual(['HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE']);
    expect(watcher.credentials.serialNumber).toBe(first);
    expect(connects).toHaveLength(1);
    expect(client.connected).toBe(true);

    // The key arrives: the pair is whole, the client reconnects with it.
    files.replace('key', renewed.key);
    await waitFor(() => rotated.length === 1 && connects.length === 2, 5_000, 'rotation');
    expect(rotated[0]?.serialNumber).not.toBe(first);
    expect(watcher.credentials.serialNumber).toBe(rotated[0]?.serialNumber);
    expect(rejected).toHaveLength(1);
    await waitFor(() => client.connected, 5_000, 'reconnected');
  });

  test('a certificate close to its notAfter is reported once', async () => {
    const files = credentialFiles();
    const expiring: boolean[] = [];
    // Every test certificate is "close" under a ten-year warning window.
    const rejected: string[] = [];
    const watcher = await TlsFileWatcher.open(files.paths, {
      pollMs: POLL_MS,
      expiryWarningMs: 10 * 365 * 24 * 60 * 60 * 1000,
      onExpiring: (_credentials, expired) => expiring.push(expired),
      onRejected: (error) => rejected.push(error.code),
    });
    watcher.start({ reconnect: () => Promise.resolve() });
    onCleanup(() => watcher.close());
    expect(expiring).toEqual([false]);
    // A poll that certainly ran (it rejected a broken key) checks expiry again: still one report.
    files.replace('key', 'not a key');
    await waitFor(() => rejected.length === 1, 5_000, 'a poll');
    expect(expiring).toEqual([false]);
  });

  test('a client that refuses the renewed credentials keeps the current ones', async () => {
    const files = credentialFiles();
    const rejected: string[] = [];
    const watcher = await TlsFileWatcher.open(files.paths, {
      pollMs: POLL_MS,
      onRejected: (error) => rejected.push(error.message),
    });
    const first = watcher.credentials.serialNumber;
    watcher.start({ reconnect: () => Promise.reject(new Error('CA unusable by gRPC')) });
    onCleanup(() => watcher.close());
    const renewed = mtls.pki.client('node-1');
    files.replace('key', renewed.key);
    files.replace('cert', renewed.cert);
    await waitFor(() => rejected.includes('CA unusable by gRPC'), 5_000, 'refusal');
    expect(watcher.credentials.serialNumber).toBe(first);
  });
});
