/**
 * The sidecar's control-plane mTLS files rotate without a restart: a real control plane with its PKI, the
 * sidecar in this process started with the issued files; renewed files are picked up (logged, reconnected
 * with the new certificate), bad ones (garbage, a key of another certificate, an expired certificate) are
 * logged with HTTPMESH_SIDECAR_CREDENTIALS_INVALID while the working connection carries on.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, ControlPlanePki, type SidecarBundle, SqliteStore } from '@httpmesh/control-plane';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import type { RuleSyncLogger, SidecarStatus } from '@httpmesh/rule-sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SidecarRuntime } from '../src/run.js';
import { startInProcessSidecar } from './harness.js';
import { getLocal, waitFor } from './plugins-harness.js';

const NODE_ID = 'checkout-1';
const TOKEN = 'test-admin-token-0123456789';
const DAY_MS = 24 * 60 * 60 * 1000;
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-rotation-'));
const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'sidecar.crt'), key: join(dir, 'sidecar.key') };
const quiet: RuleSyncLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

let cp: ControlPlane;
let pki: ControlPlanePki;
let httpUrl = '';
let runtime: SidecarRuntime;
let logLines: Record<string, unknown>[];
const connects: SidecarStatus[] = [];
const disconnects: [SidecarStatus, Error | undefined][] = [];

/** Replaces a file the way most renewal tools do: write a temporary file, rename it over the path. */
function replace(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

function install(bundle: SidecarBundle): void {
  replace(files.ca, bundle.caPem);
  replace(files.key, bundle.keyPem);
  replace(files.cert, bundle.certPem);
}

const events = (name: string): Record<string, unknown>[] => logLines.filter((l) => l['event'] === name);

async function api(method: string, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBeLessThan(300);
}

const interceptDomains = async (): Promise<string[]> => {
  const config = JSON.parse((await getLocal(runtime.adminAddress.port, '/config')).body) as {
    rules: { intercept: { domain: string }[] };
  };
  return config.rules.intercept.map((r) => r.domain).sort();
};

beforeAll(async () => {
  pki = await ControlPlanePki.open(join(dir, 'cp-ca'));
  cp = await ControlPlane.create({
    store: SqliteStore.open(join(dir, 'rules.db')),
    grpc: '127.0.0.1:0',
    http: '127.0.0.1:0',
    adminToken: TOKEN,
    pki,
    ruleSyncDebounce: { quietMs: 5, maxDelayMs: 20 },
    logger: quiet,
  });
  const addresses = await cp.start();
  httpUrl = addresses.httpUrl;
  cp.ruleSync.on('connected', (s) => connects.push(s));
  cp.ruleSync.on('disconnected', (s, e) => disconnects.push([s, e]));
  await api('POST', '/api/rules/InterceptRule', {
    name: 'partner',
    spec: { domain: 'api.partner.test', action: 'INTERCEPT' },
  });
  install(await pki.issueSidecarBundle(NODE_ID, 30));
  const started = await startInProcessSidecar(dir, [
    '--control-plane',
    `127.0.0.1:${addresses.grpcPort}`,
    '--service',
    'checkout',
    '--node-id',
    NODE_ID,
    '--control-plane-ca',
    files.ca,
    '--node-cert',
    files.cert,
    '--node-key',
    files.key,
    '--rules-cache',
    join(dir, 'rules.bin'),
  ]);
  runtime = started.runtime;
  logLines = started.logLines;
  await waitFor(interceptDomains, (d) => d.includes('api.partner.test'), 15_000);
}, 30_000);

afterAll(async () => {
  await runtime?.drain(1000).catch(() => undefined);
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('control-plane certificate rotation', () => {
  test('renewed files: rotated is logged with the new notAfter (never the key) and the sidecar reconnects with them', async () => {
    expect(connects).toHaveLength(1);
    const renewed = await pki.issueSidecarBundle(NODE_ID, 20);
    const serialNumber = new X509Certificate(renewed.certPem).serialNumber;
    install(renewed);
    const [rotated] = await waitFor(
      async () => events('control_plane.credentials.rotated'),
      (lines) => lines.length > 0,
      15_000,
    );
    expect(rotated).toMatchObject({ serialNumber, notAfter: renewed.notAfter });
    const keyBody = renewed.keyPem.split('\n')[1] ?? '';
    expect(keyBody.length).toBeGreaterThan(10);
    expect(JSON.stringify(logLines)).not.toContain(keyBody);

    // The control plane sees the old stream end cleanly (the sidecar drained it) and a new one.
    await waitFor(
      async () => connects.length,
      (n) => n === 2,
      10_000,
    );
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]?.[1]).toBeUndefined();
    expect(cp.ruleSync.sidecar(NODE_ID)?.connectedAt).toBe(connects[1]?.connectedAt);
  });

  test('garbage, a mismatched key and an expired certificate are rejected with the code; the connection and rules carry on', async () => {
    const connectsBefore = connects.length;
    /** The first rejection logged after `from` (a count of earlier ones) whose reason contains `reason`. */
    const rejection = async (from: number, reason: string) =>
      (
        await waitFor(
          async () =>
            events('control_plane.credentials.invalid')
              .slice(from)
              .filter((l) => String(l['err']).includes(reason)),
          (lines) => lines.length > 0,
          15_000,
        )
      )[0];
    const rejections = () => events('control_plane.credentials.invalid').length;
    const good = await pki.issueSidecarBundle(NODE_ID, 30);

    // A half-written certificate.
    let from = rejections();
    replace(files.cert, good.certPem.slice(0, 100));
    const garbage = await rejection(from, `${files.cert}: not a PEM certificate`);
    expect(garbage).toMatchObject({ code: 'HTTPMESH_SIDECAR_CREDENTIALS_INVALID', level: 50 });

    // A valid certificate with the key of another one.
    const other = await pki.issueSidecarBundle(NODE_ID, 30);
    from = rejections();
    replace(files.key, other.keyPem);
    replace(files.cert, good.certPem);
    const mismatch = await rejection(from, `${files.key} does not match the certificate`);
    expect(mismatch).toMatchObject({ code: 'HTTPMESH_SIDECAR_CREDENTIALS_INVALID' });

    // A certificate of this node from the same CA, but expired: issued with the CA's clock set 10 days back.
    let clockBehindMs = 0;
    const behind = await CertificateAuthority.loadFromDir(join(dir, 'cp-ca'), {
      clock: () => Date.now() - clockBehindMs,
    });
    clockBehindMs = 10 * DAY_MS;
    const expired = await behind.issueClientLeaf({ nodeId: NODE_ID, validityDays: 1 });
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    from = rejections();
    replace(files.key, expired.keyPem);
    replace(files.cert, expired.chainPem);
    const stale = await rejection(from, 'is not valid now');
    expect(stale).toMatchObject({ code: 'HTTPMESH_SIDECAR_CREDENTIALS_INVALID' });

    // None of it cost the connection: no reconnect, no rotation, and a rule pushed now still arrives.
    expect(connects).toHaveLength(connectsBefore);
    expect(events('control_plane.credentials.rotated')).toHaveLength(1);
    await api('POST', '/api/rules/InterceptRule', {
      name: 'extra',
      spec: { domain: 'api.extra.test', action: 'INTERCEPT' },
    });
    expect(await waitFor(interceptDomains, (d) => d.includes('api.extra.test'), 10_000)).toEqual([
      'api.extra.test',
      'api.partner.test',
    ]);
    expect(connects).toHaveLength(connectsBefore);

    // Good files again: picked up on the next change.
    install(good);
    await waitFor(
      async () => events('control_plane.credentials.rotated'),
      (lines) => lines.length === 2,
      15_000,
    );
    await waitFor(
      async () => connects.length,
      (n) => n === connectsBefore + 1,
      10_000,
    );
  });

  test('a certificate within 7 days of its notAfter is warned about once', async () => {
    const shortLived = await pki.issueSidecarBundle(NODE_ID, 3);
    const serialNumber = new X509Certificate(shortLived.certPem).serialNumber;
    const rotations = events('control_plane.credentials.rotated').length;
    install(shortLived);
    await waitFor(
      async () => events('control_plane.credentials.rotated'),
      (lines) => lines.length === rotations + 1,
      15_000,
    );
    const [warning] = await waitFor(
      async () => events('control_plane.credentials.expiring'),
      (lines) => lines.length > 0,
      10_000,
    );
    expect(warning).toMatchObject({ serialNumber, notAfter: shortLived.notAfter, expired: false, level: 40 });
    // Later polls (a rejected change forces one) do not repeat it.
    replace(files.cert, 'not a certificate');
    const invalidBefore = events('control_plane.credentials.invalid').length;
    await waitFor(
      async () => events('control_plane.credentials.invalid').length,
      (n) => n > invalidBefore,
      15_000,
    );
    expect(events('control_plane.credentials.expiring')).toHaveLength(1);
  });
});
