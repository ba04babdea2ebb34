import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { EtcdStore, SqliteStore } from '../src/index.js';
import type { Store, StoreChange } from '../src/index.js';
import { startEtcd, skipEtcd, tempDir, waitFor } from './helpers.js';
import type { EtcdInstance } from './helpers.js';

interface Backend {
  name: string;
  skip: boolean;
  setup(): Promise<void>;
  open(): Promise<Store>;
  teardown(): Promise<void>;
}

let etcd: EtcdInstance | undefined;
let sqliteDir: { dir: string; cleanup: () => void } | undefined;
let etcdPrefixCounter = 0;

const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async setup() {
      sqliteDir = tempDir('sqlite');
    },
    async open() {
      return SqliteStore.open(join(sqliteDir!.dir, `store-${++etcdPrefixCounter}.db`));
    },
    async teardown() {
      sqliteDir?.cleanup();
    },
  },
  {
    name: 'etcd',
    skip: skipEtcd,
    async setup() {
      etcd = await startEtcd();
    },
    async open() {
      return EtcdStore.open({ endpoints: [etcd!.endpoint], prefix: `/test-${++etcdPrefixCounter}` });
    },
    async teardown() {
      await etcd?.stop();
    },
  },
];

const ROUTES = { host: 'payments.example.com', routes: [{ pattern: '/orders/:id', methods: ['GET'] }] };
const ROUTES_V2 = {
  host: 'payments.example.com',
  routes: [{ pattern: '/orders/:id' }, { pattern: '/orders' }],
};

for (const backend of backends) {
  describe.skipIf(backend.skip)(`Store contract: ${backend.name}`, () => {
    const open: Store[] = [];
    const openStore = async (): Promise<Store> => {
      const store = await backend.open();
      open.push(store);
      return store;
    };
    beforeAll(() => backend.setup(), 30_000);
    afterAll(() => backend.teardown());
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    test('create, get, list by kind', async () => {
      const store = await openStore();
      const created = await store.put('RouteSet', 'payments', ROUTES, {
        author: 'alice',
        expectedRevision: 0,
      });
      expect(created).toMatchObject({
        kind: 'RouteSet',
        name: 'payments',
        revision: 1,
        updatedBy: 'alice',
        spec: ROUTES,
      });
      await store.put(
        'InterceptRule',
        'partner',
        { domain: 'api.partner.com', action: 'INTERCEPT' },
        { author: 'bob' },
      );
      expect(await store.get('RouteSet', 'payments')).toEqual(created);
      expect((await store.list('RouteSet')).map((r) => r.name)).toEqual(['payments']);
      expect((await store.list()).map((r) => `${r.kind}/${r.name}`)).toEqual([
        'InterceptRule/partner',
        'RouteSet/payments',
      ]);
      expect(await store.get('RouteSet', 'missing')).toBeUndefined();
    });

    test('every change is a revision with who, when and what; rollback writes a new revision', async () => {
      const store = await openStore();
      await store.put('RouteSet', 'p', ROUTES, { author: 'alice', expectedRevision: 0 });
      await store.put('RouteSet', 'p', ROUTES_V2, { author: 'bob', expectedRevision: 1 });
      const history = await store.history('RouteSet', 'p');
      expect(history.map((h) => [h.revision, h.action, h.author])).toEqual([
        [1, 'create', 'alice'],
        [2, 'update', 'bob'],
      ]);
      expect(history[1]?.spec).toEqual(ROUTES_V2);
      expect(Number.isNaN(Date.parse(history[0]?.at ?? ''))).toBe(false);
      const rolled = await store.rollback('RouteSet', 'p', 1, { author: 'carol', expectedRevision: 2 });
      expect(rolled).toMatchObject({ revision: 3, spec: ROUTES, updatedBy: 'carol' });
      expect((await store.history('RouteSet', 'p')).map((h) => h.action)).toEqual([
        'create',
        'update',
        'rollback',
      ]);
      await expect(store.rollback('RouteSet', 'p', 42, { author: 'carol' })).rejects.toMatchObject({
        code: 'HTTPMESH_CP_REVISION_NOT_FOUND',
      });
    });

    test('stale revision is a conflict and changes nothing', async () => {
      const store = await openStore();
      await store.put(
        'Policy',
        'slow',
        { host: 'a.example.com', timeoutMs: 100 },
        { author: 'a', expectedRevision: 0 },
      );
      await expect(
        store.put('Policy', 'slow', { host: 'a.example.com' }, { author: 'b', expectedRevision: 0 }),
      ).rejects.toMatchObject({
        code: 'HTTPMESH_CP_REVISION_CONFLICT',
        currentRevision: 1,
      });
      await store.put(
        'Policy',
        'slow',
        { host: 'a.example.com', timeoutMs: 200 },
        { author: 'a', expectedRevision: 1 },
      );
      await expect(
        store.put('Policy', 'slow', { host: 'a.example.com' }, { author: 'b', expectedRevision: 1 }),
      ).rejects.toMatchObject({
        code: 'HTTPMESH_CP_REVISION_CONFLICT',
        currentRevision: 2,
      });
      await expect(
        store.delete('Policy', 'slow', { author: 'b', expectedRevision: 1 }),
      ).rejects.toMatchObject({
        code: 'HTTPMESH_CP_REVISION_CONFLICT',
      });
      expect(await store.get('Policy', 'slow')).toMatchObject({ revision: 2, spec: { timeoutMs: 200 } });
      expect(await store.history('Policy', 'slow')).toHaveLength(2);
    });

    test('concurrent edits based on the same revision: exactly one wins', async () => {
      const store = await openStore();
      await store.put('Policy', 'race', { host: 'a.example.com' }, { author: 'a', expectedRevision: 0 });
      const attempts = await Promise.allSettled(
        [1, 2, 3, 4].map((i) =>
          store.put(
            'Policy',
            'race',
            { host: 'a.example.com', timeoutMs: i },
            { author: `w${i}`, expectedRevision: 1 },
          ),
        ),
      );
      const won = attempts.filter((a) => a.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const lost of attempts.filter((a) => a.status === 'rejected')) {
        expect((lost as PromiseRejectedResult).reason).toMatchObject({
          code: 'HTTPMESH_CP_REVISION_CONFLICT',
        });
      }
      expect((await store.get('Policy', 'race'))?.revision).toBe(2);
    });

    test('delete keeps history, re-creation continues the revision sequence, rollback restores', async () => {
      const store = await openStore();
      await store.put('RouteSet', 'd', ROUTES, { author: 'a' });
      const deleted = await store.delete('RouteSet', 'd', { author: 'b', expectedRevision: 1 });
      expect(deleted).toMatchObject({ revision: 2, action: 'delete', spec: null, author: 'b' });
      expect(await store.get('RouteSet', 'd')).toBeUndefined();
      await expect(store.delete('RouteSet', 'd', { author: 'b' })).rejects.toMatchObject({
        code: 'HTTPMESH_CP_RULE_NOT_FOUND',
      });
      const restored = await store.rollback('RouteSet', 'd', 1, { author: 'c', expectedRevision: 0 });
      expect(restored).toMatchObject({ revision: 3, spec: ROUTES });
      const recreated = await store.put('RouteSet', 'd', ROUTES_V2, { author: 'c', expectedRevision: 3 });
      expect(recreated.revision).toBe(4);
    });

    test('watchers see committed changes in order, including deletes', async () => {
      const store = await openStore();
      const seen: StoreChange[] = [];
      const stop = store.watch((change) => seen.push(change));
      await store.put('RouteSet', 'w', ROUTES, { author: 'a' });
      await store.put('RouteSet', 'w', ROUTES_V2, { author: 'a' });
      await store.delete('RouteSet', 'w', { author: 'a' });
      await waitFor(() => seen.length === 3, 5_000, 'three changes');
      expect(seen.map((c) => [c.revision.revision, c.revision.action, c.rule?.revision])).toEqual([
        [1, 'create', 1],
        [2, 'update', 2],
        [3, 'delete', undefined],
      ]);
      stop();
      const later: StoreChange[] = [];
      store.watch((change) => later.push(change));
      await store.put('RouteSet', 'w2', ROUTES, { author: 'a' });
      await waitFor(() => later.length === 1, 5_000, 'the second watcher');
      expect(seen).toHaveLength(3);
    });
  });
}

describe.skipIf(skipEtcd)('EtcdStore replicas', () => {
  let shared: EtcdInstance | undefined;
  beforeAll(async () => {
    shared = await startEtcd();
  }, 30_000);
  afterAll(() => shared?.stop());

  test('a change through one replica is seen by the other through watch; cross-replica stale write conflicts', async () => {
    const a = await EtcdStore.open({ endpoints: [shared!.endpoint], prefix: '/replicas' });
    const b = await EtcdStore.open({ endpoints: [shared!.endpoint], prefix: '/replicas' });
    try {
      const seenByB: StoreChange[] = [];
      b.watch((change) => seenByB.push(change));
      await a.put('RouteSet', 'shared', ROUTES, { author: 'replica-a', expectedRevision: 0 });
      await waitFor(() => seenByB.length === 1, 5_000, 'replica b to see the change');
      expect(seenByB[0]?.rule).toMatchObject({ name: 'shared', revision: 1, updatedBy: 'replica-a' });
      await b.put('RouteSet', 'shared', ROUTES_V2, { author: 'replica-b', expectedRevision: 1 });
      await expect(
        a.put('RouteSet', 'shared', ROUTES, { author: 'replica-a', expectedRevision: 1 }),
      ).rejects.toMatchObject({
        code: 'HTTPMESH_CP_REVISION_CONFLICT',
        currentRevision: 2,
      });
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('an unreachable etcd is a clear StoreUnavailableError', async () => {
    await expect(EtcdStore.open({ endpoints: ['http://127.0.0.1:1'], timeoutMs: 500 })).rejects.toMatchObject(
      {
        code: 'HTTPMESH_CP_STORE_UNAVAILABLE',
      },
    );
  });
});

describe('SqliteStore file integrity', () => {
  test('a corrupted store file is refused at startup with a clear error', async () => {
    const { dir, cleanup } = tempDir('corrupt');
    try {
      const path = join(dir, 'rules.db');
      const store = SqliteStore.open(path);
      for (let i = 0; i < 50; i++) await store.put('RouteSet', `r${i}`, ROUTES, { author: 'a' });
      await store.close();
      const bytes = readFileSync(path);
      // Overwrite everything after the 100-byte header with garbage: pages no longer parse.
      for (let i = 100; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
      writeFileSync(path, bytes);
      expect(() => SqliteStore.open(path)).toThrowError(
        expect.objectContaining({ code: 'HTTPMESH_CP_STORE_CORRUPT', name: 'StoreCorruptError' }),
      );
      writeFileSync(
        path,
        'this is not a database at all, just text that is long enough to look like a header '.repeat(20),
      );
      expect(() => SqliteStore.open(path)).toThrowError(/corrupt/);
    } finally {
      cleanup();
    }
  });

  test('data survives reopening', async () => {
    const { dir, cleanup } = tempDir('reopen');
    try {
      const path = join(dir, 'rules.db');
      const first = SqliteStore.open(path);
      await first.put('RouteSet', 'keep', ROUTES, { author: 'a' });
      await first.close();
      const second = SqliteStore.open(path);
      expect(await second.get('RouteSet', 'keep')).toMatchObject({ revision: 1, spec: ROUTES });
      await second.close();
    } finally {
      cleanup();
    }
  });
});

describe.skipIf(skipEtcd)('EtcdStore malformed data', () => {
  let shared: EtcdInstance | undefined;
  beforeAll(async () => {
    shared = await startEtcd();
  }, 30_000);
  afterAll(() => shared?.stop());

  test('garbage under the prefix is reported as corrupt on read and ignored by watchers', async () => {
    const { Etcd3 } = await import('etcd3');
    const raw = new Etcd3({ hosts: [shared!.endpoint] });
    const store = await EtcdStore.open({ endpoints: [shared!.endpoint], prefix: '/garbage' });
    try {
      const seen: StoreChange[] = [];
      store.watch((change) => seen.push(change));
      await raw.put('/garbage/history/RouteSet/x/0000000001').value('{not json');
      await raw.put('/garbage/history/RouteSet/y/0000000001').value('{"kind":"Nope","name":"y"}');
      await waitFor(() => store.malformedEvents === 2, 5_000, 'malformed events counted');
      await store.put('RouteSet', 'fine', ROUTES, { author: 'a' });
      await waitFor(() => seen.length === 1, 5_000, 'the valid change');
      expect(seen[0]?.rule?.name).toBe('fine');
      await raw.put('/garbage/rules/RouteSet/bad').value('[]');
      await expect(store.list('RouteSet')).rejects.toMatchObject({
        code: 'HTTPMESH_CP_STORE_CORRUPT',
        message: expect.stringContaining('/garbage/rules/RouteSet/bad'),
      });
      await expect(store.get('RouteSet', 'bad')).rejects.toMatchObject({ code: 'HTTPMESH_CP_STORE_CORRUPT' });
      await raw.put('/garbage/head/RouteSet/fine').value('NaN');
      await expect(store.put('RouteSet', 'fine', ROUTES, { author: 'a' })).rejects.toMatchObject({
        code: 'HTTPMESH_CP_STORE_CORRUPT',
      });
    } finally {
      await store.close();
      raw.close();
    }
  });
});
