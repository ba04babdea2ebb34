import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { decodeStateFile, encodeStateFile, type PersistedState, readStateFile } from '../src/index.js';
import { INTERCEPT, interceptRule, memoryLogger, tempDir, waitFor } from './helpers.js';
import { domains, GROUP, makeClient, onCleanup, startServer } from './setup.js';

/** An address where nothing listens: bind a server, note its port, close it. */
async function deadAddress(): Promise<string> {
  const { server, address } = await startServer();
  await server.close(100);
  return address;
}

async function syncedStateFile(): Promise<{ path: string; dir: string; version: string }> {
  const { dir, cleanup } = tempDir('persist');
  onCleanup(cleanup);
  const path = join(dir, 'rules.bin');
  const { server, address } = await startServer();
  server.setResources(GROUP, [interceptRule('a', 'api.partner.com'), interceptRule('b', '*.partner.com')]);
  server.flush();
  const client = makeClient(address, { subscriptions: [INTERCEPT], persistPath: path });
  await client.start();
  const version = server.resources(GROUP, INTERCEPT).systemVersion;
  await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === version);
  await client.close();
  await server.close(100);
  return { path, dir, version };
}

describe('persistence', () => {
  test('a restarted sidecar serves its last good rules before the control plane is reachable', async () => {
    const { path, dir, version } = await syncedStateFile();
    expect(readdirSync(dir)).toEqual(['rules.bin']); // temp files were renamed away
    const state = await readStateFile(path);
    expect(state?.types[0]?.systemVersion).toBe(version);

    const client = makeClient(await deadAddress(), { subscriptions: [INTERCEPT], persistPath: path });
    const applied: string[] = [];
    client.on('applied', (u) => applied.push(`${u.source} ${u.systemVersion}`));
    await client.start();
    expect(client.connected).toBe(false);
    expect(client.version(INTERCEPT)).toBe(version);
    expect(domains(client)).toEqual(['*.partner.com', 'api.partner.com']);
    expect(applied).toEqual([`persisted ${version}`]);
  });

  test('a reconnecting sidecar started from the file is not resent what it holds', async () => {
    const { path } = await syncedStateFile();
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com'), interceptRule('b', '*.partner.com')]);
    server.flush();
    const validated: string[] = [];
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      persistPath: path,
      validate: (u) => void validated.push(u.systemVersion),
    });
    const applied: string[] = [];
    client.on('applied', (u) => applied.push(u.source));
    await client.start();
    // The persisted set went through validate once, at load.
    expect(validated).toEqual([client.version(INTERCEPT)]);
    await waitFor(() => server.sidecar('node-1')?.lastHeartbeatAt !== undefined);
    expect(server.sidecar('node-1')?.types[0]?.ackedVersion).toBe(client.version(INTERCEPT));
    expect(server.sidecar('node-1')?.types[0]?.pendingNonce).toBeUndefined();
    expect(applied).toEqual(['persisted']);
    expect(validated).toHaveLength(1);
  });

  test('a control plane that has not set the group yet does not wipe what the sidecar holds', async () => {
    const { path, version } = await syncedStateFile();
    const { server, address } = await startServer();
    const client = makeClient(address, { subscriptions: [INTERCEPT], persistPath: path });
    const pushes: string[] = [];
    client.on('applied', (u) => pushes.push(u.source));
    await client.start();
    await waitFor(() => client.connected && server.sidecar('node-1') !== undefined);
    expect(server.sidecar('node-1')?.types[0]?.ackedVersion).toBe(version);
    expect(pushes).toEqual(['persisted']);
    expect(domains(client)).toEqual(['*.partner.com', 'api.partner.com']);

    // Once the control plane sets the group (here: empty), the sidecar follows it.
    server.setResources(GROUP, []);
    server.flush();
    await waitFor(() => pushes.length === 2);
    expect(pushes).toEqual(['persisted', 'push']);
    expect(client.resources(INTERCEPT)).toEqual([]);
  });

  const corruptions: [string, (bytes: Buffer) => Buffer, RegExp][] = [
    ['truncated (partial write)', (b) => b.subarray(0, b.length - 7), /partial write/],
    [
      'a flipped payload byte',
      (b) => {
        const copy = Buffer.from(b);
        copy[copy.length - 3]! ^= 0xff;
        return copy;
      },
      /checksum mismatch/,
    ],
    ['an empty file', () => Buffer.alloc(0), /shorter than the 44-byte header/],
    ['foreign content', () => Buffer.from('{"rules": []}\n'.repeat(10)), /bad magic/],
  ];
  test.each(corruptions)(
    'a file with %s is ignored with a clear log line, then replaced',
    async (_label, corrupt, reason) => {
      const { path } = await syncedStateFile();
      writeFileSync(path, corrupt(readFileSync(path)));
      const logger = memoryLogger();
      const dead = makeClient(await deadAddress(), { subscriptions: [INTERCEPT], persistPath: path, logger });
      await dead.start();
      expect(dead.version(INTERCEPT)).toBeUndefined();
      const line = logger.lines.find((l) => l.startsWith('error ignoring persisted configuration'));
      expect(line).toContain(path);
      expect(line).toContain('HTTPMESH_RULESYNC_STATE_CORRUPT');
      expect(line).toMatch(reason);
      await dead.close();

      // Once the control plane is reachable the file is rewritten and valid again.
      const { server, address } = await startServer();
      server.setResources(GROUP, [interceptRule('c', 'c.partner.com')]);
      server.flush();
      const live = makeClient(address, { subscriptions: [INTERCEPT], persistPath: path });
      await live.start();
      const version = server.resources(GROUP, INTERCEPT).systemVersion;
      await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === version);
      const state = await readStateFile(path);
      expect(state?.types[0]?.resources.map((r) => r.name)).toEqual(['c']);
    },
  );

  test('a well-formed file holding an invalid resource is ignored too', async () => {
    const { dir, cleanup } = tempDir('persist');
    onCleanup(cleanup);
    const path = join(dir, 'rules.bin');
    const bogus: PersistedState = {
      savedAtUnixMs: 1,
      types: [
        {
          type: INTERCEPT,
          systemVersion: 'v1',
          nonce: '',
          removed: [],
          resources: [interceptRule('x', 'not a host')],
        },
      ],
    };
    writeFileSync(path, encodeStateFile(bogus));
    const logger = memoryLogger();
    const client = makeClient(await deadAddress(), { subscriptions: [INTERCEPT], persistPath: path, logger });
    await client.start();
    expect(client.version(INTERCEPT)).toBeUndefined();
    expect(
      logger.lines.some((l) => l.includes('HTTPMESH_RULESYNC_STATE_CORRUPT') && l.includes('invalid domain')),
    ).toBe(true);
  });

  test('a persisted set that the validate hook now rejects is ignored', async () => {
    const { path } = await syncedStateFile();
    const logger = memoryLogger();
    const client = makeClient(await deadAddress(), {
      subscriptions: [INTERCEPT],
      persistPath: path,
      logger,
      validate: (u) => {
        if (
          u.resources.some((r) => r.body?.$case === 'interceptRule' && r.body.value.domain.startsWith('*.'))
        ) {
          throw new Error('wildcards no longer allowed');
        }
      },
    });
    await client.start();
    expect(client.version(INTERCEPT)).toBeUndefined();
    expect(logger.lines).toContain(
      `error ignoring persisted configuration ${path} (InterceptRule rejected by validate: wildcards no longer allowed); waiting for the control plane`,
    );
  });

  test('the codec round-trips and rejects a payload that is not protobuf', () => {
    const state: PersistedState = {
      savedAtUnixMs: 42,
      types: [
        {
          type: INTERCEPT,
          systemVersion: 'v1',
          nonce: '',
          removed: [],
          resources: [interceptRule('a', 'a.com', 'r1')],
        },
      ],
    };
    expect(decodeStateFile(encodeStateFile(state))).toEqual(state);
    const file = encodeStateFile(state);
    // Recompute a valid header around garbage so only the protobuf decode can fail.
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const forged = Buffer.concat([file.subarray(0, 8), Buffer.alloc(36), garbage]);
    forged.writeUInt32BE(garbage.length, 8);
    createHash('sha256').update(garbage).digest().copy(forged, 12);
    expect(() => decodeStateFile(forged)).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_RULESYNC_STATE_CORRUPT' }),
    );
  });
});
