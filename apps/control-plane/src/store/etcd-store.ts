import { Etcd3 } from 'etcd3';
import type { IOptions, Watcher } from 'etcd3';
import {
  RevisionConflictError,
  RuleNotFoundError,
  StoreCorruptError,
  StoreUnavailableError,
} from '../errors.js';
import { isRuleKind } from '../rules.js';
import type { JsonObject, RuleKind } from '../rules.js';
import { rollbackVia } from './rollback.js';
import type {
  ChangeAction,
  ChangeListener,
  RuleRevision,
  Store,
  StoreChange,
  StoredRule,
  WriteOptions,
} from './types.js';

export interface EtcdStoreOptions {
  /** e.g. `['http://127.0.0.1:2379']`. */
  endpoints: readonly string[];
  /** Key prefix shared by the replicas of one mesh. Default `/httpmesh`. */
  prefix?: string;
  /** Per-call timeout. Default 5 000 ms. */
  timeoutMs?: number;
}

function isSpec(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a value written by another replica (or by hand): never trusted. */
function parseEntry<T extends StoredRule | RuleRevision>(
  key: string,
  text: string,
  shape: 'rule' | 'revision',
): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StoreCorruptError(`etcd key ${key} does not hold JSON`);
  }
  const v = value as Record<string, unknown>;
  const ok =
    isSpec(value) &&
    typeof v['kind'] === 'string' &&
    isRuleKind(v['kind']) &&
    typeof v['name'] === 'string' &&
    Number.isInteger(v['revision']) &&
    (shape === 'rule'
      ? isSpec(v['spec']) && typeof v['updatedAt'] === 'string' && typeof v['updatedBy'] === 'string'
      : (v['spec'] === null || isSpec(v['spec'])) &&
        typeof v['action'] === 'string' &&
        typeof v['author'] === 'string' &&
        typeof v['at'] === 'string');
  if (!ok) throw new StoreCorruptError(`etcd key ${key} does not hold a valid ${shape}`);
  return value as T;
}

/**
 * Store on etcd for several control-plane replicas. Keys under the prefix:
 * `rules/<kind>/<name>` (current rule), `head/<kind>/<name>` (last revision number, survives deletes),
 * `history/<kind>/<name>/<revision>` (one entry per change). Every change is one etcd transaction that
 * compares the head key's mod revision, so concurrent writers on different replicas cannot both win.
 * Replicas learn of each other's changes by watching `history/`.
 */
export class EtcdStore implements Store {
  readonly backend = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly listeners = new Set<ChangeListener>();
  private watcher: Watcher | undefined;
  /** Watch events under `history/` that did not parse and were ignored. */
  malformedEvents = 0;

  private constructor(client: Etcd3, prefix: string) {
    this.client = client;
    this.prefix = prefix;
  }

  /** Connects, checks etcd answers, and starts watching. @throws StoreUnavailableError */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const clientOptions: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: options.timeoutMs ?? 5_000,
      defaultCallOptions: () => ({ deadline: new Date(Date.now() + (options.timeoutMs ?? 5_000)) }),
    };
    const client = new Etcd3(clientOptions);
    const store = new EtcdStore(client, (options.prefix ?? '/httpmesh').replace(/\/+$/, ''));
    try {
      await client.get(`${store.prefix}/probe`).string();
      store.watcher = await client.watch().prefix(`${store.prefix}/history/`).create();
    } catch (err) {
      client.close();
      throw new StoreUnavailableError(`etcd at ${options.endpoints.join(', ')}: ${(err as Error).message}`);
    }
    store.watcher.on('put', (kv) => {
      let entry: RuleRevision;
      try {
        entry = parseEntry<RuleRevision>(kv.key.toString('utf8'), kv.value.toString('utf8'), 'revision');
      } catch {
        // A foreign or damaged write under our prefix: not a change we can apply; the periodic resync
        // (which reads `rules/`) stays authoritative.
        store.malformedEvents++;
        return;
      }
      const change: StoreChange = {
        revision: entry,
        rule:
          entry.spec === null
            ? undefined
            : {
                kind: entry.kind,
                name: entry.name,
                spec: entry.spec,
                revision: entry.revision,
                updatedAt: entry.at,
                updatedBy: entry.author,
              },
      };
      for (const listener of store.listeners) listener(change);
    });
    return store;
  }

  private ruleKey(kind: RuleKind, name: string): string {
    return `${this.prefix}/rules/${kind}/${name}`;
  }

  private headKey(kind: RuleKind, name: string): string {
    return `${this.prefix}/head/${kind}/${name}`;
  }

  private historyPrefix(kind: RuleKind, name: string): string {
    return `${this.prefix}/history/${kind}/${name}/`;
  }

  async list(kind?: RuleKind): Promise<StoredRule[]> {
    const prefix = kind === undefined ? `${this.prefix}/rules/` : `${this.prefix}/rules/${kind}/`;
    const all = await this.call(() => this.client.getAll().prefix(prefix).strings());
    return Object.entries(all)
      .map(([key, text]) => parseEntry<StoredRule>(key, text, 'rule'))
      .sort((a, b) => (a.kind === b.kind ? (a.name < b.name ? -1 : 1) : a.kind < b.kind ? -1 : 1));
  }

  async get(kind: RuleKind, name: string): Promise<StoredRule | undefined> {
    const key = this.ruleKey(kind, name);
    const text = await this.call(() => this.client.get(key).string());
    return text === null ? undefined : parseEntry<StoredRule>(key, text, 'rule');
  }

  async put(kind: RuleKind, name: string, spec: JsonObject, options: WriteOptions): Promise<StoredRule> {
    const rule = await this.write(kind, name, spec, options, undefined);
    if (rule === undefined) throw new Error('unreachable: put wrote no rule');
    return rule;
  }

  async delete(kind: RuleKind, name: string, options: WriteOptions): Promise<RuleRevision> {
    if ((await this.get(kind, name)) === undefined)
      throw new RuleNotFoundError(`${kind} "${name}" does not exist`);
    await this.write(kind, name, null, options, 'delete');
    const history = await this.history(kind, name);
    const last = history[history.length - 1];
    if (last === undefined) throw new Error('unreachable: delete left no history');
    return last;
  }

  async history(kind: RuleKind, name: string): Promise<RuleRevision[]> {
    const all = await this.call(() => this.client.getAll().prefix(this.historyPrefix(kind, name)).strings());
    return Object.entries(all)
      .map(([key, text]) => parseEntry<RuleRevision>(key, text, 'revision'))
      .sort((a, b) => a.revision - b.revision);
  }

  async rollback(
    kind: RuleKind,
    name: string,
    toRevision: number,
    options: WriteOptions,
  ): Promise<StoredRule | undefined> {
    return rollbackVia(
      this,
      (spec, opts) => this.write(kind, name, spec, opts, 'rollback'),
      kind,
      name,
      toRevision,
      options,
    );
  }

  watch(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  private async call<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StoreUnavailableError(`etcd: ${(err as Error).message}`);
    }
  }

  private async write(
    kind: RuleKind,
    name: string,
    spec: JsonObject | null,
    options: WriteOptions,
    forced: ChangeAction | undefined,
  ): Promise<StoredRule | undefined> {
    const headKey = this.headKey(kind, name);
    const [headResponse, current] = await Promise.all([
      this.call(() => this.client.get(headKey).exec()),
      this.get(kind, name),
    ]);
    const head = headResponse.kvs[0];
    const currentRevision = current?.revision ?? 0;
    if (options.expectedRevision !== undefined && options.expectedRevision !== currentRevision) {
      throw new RevisionConflictError(
        `${kind} "${name}" is at revision ${currentRevision}, the change was based on ${options.expectedRevision}`,
        current === undefined ? null : currentRevision,
      );
    }
    if (spec === null && current === undefined) return undefined;
    const headValue = head === undefined ? 0 : Number(head.value.toString('utf8'));
    if (!Number.isInteger(headValue) || headValue < 0)
      throw new StoreCorruptError(`etcd key ${headKey} does not hold a revision number`);
    const revision = headValue + 1;
    const at = new Date().toISOString();
    const action: ChangeAction = forced ?? (current === undefined ? 'create' : 'update');
    const entry: RuleRevision = { kind, name, revision, action, spec, author: options.author, at };
    const rule: StoredRule | undefined =
      spec === null ? undefined : { kind, name, spec, revision, updatedAt: at, updatedBy: options.author };
    const ruleOp =
      rule === undefined
        ? this.client.delete().key(this.ruleKey(kind, name))
        : this.client.put(this.ruleKey(kind, name)).value(JSON.stringify(rule));
    const result = await this.call(() =>
      (head === undefined
        ? this.client.if(headKey, 'Create', '==', 0)
        : this.client.if(headKey, 'Mod', '==', head.mod_revision)
      )
        .then(
          this.client.put(headKey).value(String(revision)),
          ruleOp,
          this.client
            .put(`${this.historyPrefix(kind, name)}${String(revision).padStart(10, '0')}`)
            .value(JSON.stringify(entry)),
        )
        .commit(),
    );
    if (!result.succeeded) {
      // Another writer (possibly on another replica) committed between our read and our transaction.
      const latest = await this.get(kind, name);
      throw new RevisionConflictError(
        `${kind} "${name}" was changed concurrently (now at revision ${latest?.revision ?? 'deleted'})`,
        latest?.revision ?? null,
      );
    }
    return rule;
  }
}
