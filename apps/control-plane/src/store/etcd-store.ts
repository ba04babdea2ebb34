import { Etcd3 } from 'etcd3';
import type { IOptions, Watcher } from 'etcd3';
import { RevisionConflictError, RuleNotFoundError, StoreUnavailableError } from '../errors.js';
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
      const entry = JSON.parse(kv.value.toString('utf8')) as RuleRevision;
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
    return Object.values(all)
      .map((text) => JSON.parse(text) as StoredRule)
      .sort((a, b) => (a.kind === b.kind ? (a.name < b.name ? -1 : 1) : a.kind < b.kind ? -1 : 1));
  }

  async get(kind: RuleKind, name: string): Promise<StoredRule | undefined> {
    const text = await this.call(() => this.client.get(this.ruleKey(kind, name)).string());
    return text === null ? undefined : (JSON.parse(text) as StoredRule);
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
    return Object.values(all)
      .map((text) => JSON.parse(text) as RuleRevision)
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
    const revision = (head === undefined ? 0 : Number(head.value.toString('utf8'))) + 1;
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
