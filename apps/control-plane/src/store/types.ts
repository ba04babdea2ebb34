import type { JsonObject, RuleKind } from '../rules.js';

/** The current state of one rule. */
export interface StoredRule {
  kind: RuleKind;
  name: string;
  spec: JsonObject;
  /** Per-rule revision, 1 on creation, +1 on every change (update, rollback, re-creation). */
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export type ChangeAction = 'create' | 'update' | 'delete' | 'rollback';

/** One entry of a rule's history: who changed what when. `spec` is null for a delete. */
export interface RuleRevision {
  kind: RuleKind;
  name: string;
  revision: number;
  action: ChangeAction;
  spec: JsonObject | null;
  author: string;
  at: string;
}

export interface WriteOptions {
  author: string;
  /**
   * Optimistic concurrency: the revision the caller last read. `0` means "must not exist yet";
   * undefined skips the check. A mismatch rejects with RevisionConflictError.
   */
  expectedRevision?: number;
}

/** A committed change, delivered to watchers in commit order (on every replica for shared stores). */
export interface StoreChange {
  revision: RuleRevision;
  /** The rule after the change; undefined after a delete. */
  rule: StoredRule | undefined;
}

export type ChangeListener = (change: StoreChange) => void;

/**
 * Rule storage with history. Implementations: SqliteStore (embedded, one replica) and EtcdStore
 * (shared by several replicas, which see each other's changes through `watch`). Both pass the same
 * test suite (test/store.test.ts).
 */
export interface Store {
  readonly backend: 'sqlite' | 'etcd';
  list(kind?: RuleKind): Promise<StoredRule[]>;
  get(kind: RuleKind, name: string): Promise<StoredRule | undefined>;
  /** Creates or updates a rule. */
  put(kind: RuleKind, name: string, spec: JsonObject, options: WriteOptions): Promise<StoredRule>;
  /** Deletes a rule (kept in history). @throws RuleNotFoundError */
  delete(kind: RuleKind, name: string, options: WriteOptions): Promise<RuleRevision>;
  /** The rule's changes, oldest first (also after deletion). */
  history(kind: RuleKind, name: string): Promise<RuleRevision[]>;
  /**
   * Makes the rule what it was at `toRevision`, as a new revision with action `rollback`
   * (rolling back to a delete deletes it).
   * @throws RevisionNotFoundError, RevisionConflictError
   */
  rollback(
    kind: RuleKind,
    name: string,
    toRevision: number,
    options: WriteOptions,
  ): Promise<StoredRule | undefined>;
  /** Subscribes to committed changes (own and, for shared stores, other replicas'). Returns unsubscribe. */
  watch(listener: ChangeListener): () => void;
  close(): Promise<void>;
}
