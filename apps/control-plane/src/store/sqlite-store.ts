import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  RevisionConflictError,
  RuleNotFoundError,
  StoreCorruptError,
  StoreUnavailableError,
} from '../errors.js';
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

const SCHEMA_VERSION = 1;

interface RuleRow {
  kind: string;
  name: string;
  spec: string;
  revision: number;
  updated_at: string;
  updated_by: string;
}

interface RevisionRow {
  kind: string;
  name: string;
  revision: number;
  action: string;
  spec: string | null;
  author: string;
  at: string;
}

function toRule(row: RuleRow): StoredRule {
  return {
    kind: row.kind as RuleKind,
    name: row.name,
    spec: JSON.parse(row.spec) as JsonObject,
    revision: row.revision,
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
  };
}

function toRevision(row: RevisionRow): RuleRevision {
  return {
    kind: row.kind as RuleKind,
    name: row.name,
    revision: row.revision,
    action: row.action as ChangeAction,
    spec: row.spec === null ? null : (JSON.parse(row.spec) as JsonObject),
    author: row.author,
    at: row.at,
  };
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    code === 'SQLITE_NOTADB' ||
    code === 'SQLITE_CORRUPT' ||
    (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'))
  );
}

/** Embedded store on SQLite (better-sqlite3, WAL): the rule table plus an append-only revision table. */
export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly listeners = new Set<ChangeListener>();

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /**
   * Opens (creating if needed) the database at `path` and checks its integrity first.
   * @throws StoreCorruptError (`HTTPMESH_CP_STORE_CORRUPT`) when the file is not an intact store.
   */
  static open(path: string): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new StoreUnavailableError(`cannot open SQLite store ${path}: ${(err as Error).message}`);
    }
    try {
      // quick_check reads every page, so a damaged file is refused at startup, not on the first write.
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw Object.assign(new Error(String(check)), { code: 'SQLITE_CORRUPT' });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS rules (
          kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, revision INTEGER NOT NULL,
          updated_at TEXT NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (kind, name));
        CREATE TABLE IF NOT EXISTS revisions (
          kind TEXT NOT NULL, name TEXT NOT NULL, revision INTEGER NOT NULL, action TEXT NOT NULL,
          spec TEXT, author TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (kind, name, revision));
      `);
      const version = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema'").get();
      if (version === undefined) {
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      } else if (version.value !== String(SCHEMA_VERSION)) {
        throw new StoreCorruptError(
          `SQLite store ${path} has schema ${version.value}, this version reads ${SCHEMA_VERSION}`,
        );
      }
    } catch (err) {
      db.close();
      if (err instanceof StoreCorruptError) throw err;
      if (isCorruption(err)) {
        throw new StoreCorruptError(
          `SQLite store ${path} is corrupt (${(err as Error).message}); restore it from a backup or move it away to start empty`,
        );
      }
      throw err;
    }
    return new SqliteStore(db);
  }

  async list(kind?: RuleKind): Promise<StoredRule[]> {
    const rows =
      kind === undefined
        ? this.db.prepare<[], RuleRow>('SELECT * FROM rules ORDER BY kind, name').all()
        : this.db.prepare<[string], RuleRow>('SELECT * FROM rules WHERE kind = ? ORDER BY name').all(kind);
    return rows.map(toRule);
  }

  async get(kind: RuleKind, name: string): Promise<StoredRule | undefined> {
    const row = this.db
      .prepare<[string, string], RuleRow>('SELECT * FROM rules WHERE kind = ? AND name = ?')
      .get(kind, name);
    return row === undefined ? undefined : toRule(row);
  }

  async put(kind: RuleKind, name: string, spec: JsonObject, options: WriteOptions): Promise<StoredRule> {
    const rule = this.write(kind, name, spec, options, undefined);
    if (rule === undefined) throw new Error('unreachable: put wrote no rule');
    return rule;
  }

  async delete(kind: RuleKind, name: string, options: WriteOptions): Promise<RuleRevision> {
    const current = await this.get(kind, name);
    if (current === undefined) throw new RuleNotFoundError(`${kind} "${name}" does not exist`);
    this.write(kind, name, null, options, 'delete');
    const history = await this.history(kind, name);
    const last = history[history.length - 1];
    if (last === undefined) throw new Error('unreachable: delete left no history');
    return last;
  }

  async history(kind: RuleKind, name: string): Promise<RuleRevision[]> {
    return this.db
      .prepare<[string, string], RevisionRow>(
        'SELECT * FROM revisions WHERE kind = ? AND name = ? ORDER BY revision',
      )
      .all(kind, name)
      .map(toRevision);
  }

  async rollback(
    kind: RuleKind,
    name: string,
    toRevision: number,
    options: WriteOptions,
  ): Promise<StoredRule | undefined> {
    return rollbackVia(
      this,
      async (spec, opts) => this.write(kind, name, spec, opts, 'rollback'),
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
    if (this.db.open) this.db.close();
  }

  /** One transaction: concurrency check, new rule state, history entry. `spec === null` deletes. */
  private write(
    kind: RuleKind,
    name: string,
    spec: JsonObject | null,
    options: WriteOptions,
    forced: ChangeAction | undefined,
  ): StoredRule | undefined {
    const change = this.db.transaction((): StoreChange | undefined => {
      const current = this.db
        .prepare<[string, string], RuleRow>('SELECT * FROM rules WHERE kind = ? AND name = ?')
        .get(kind, name);
      const currentRevision = current?.revision ?? 0;
      if (options.expectedRevision !== undefined && options.expectedRevision !== currentRevision) {
        throw new RevisionConflictError(
          `${kind} "${name}" is at revision ${currentRevision}, the change was based on ${options.expectedRevision}`,
          current === undefined ? null : currentRevision,
        );
      }
      if (spec === null && current === undefined) return undefined;
      const last = this.db
        .prepare<[string, string], { r: number | null }>(
          'SELECT MAX(revision) AS r FROM revisions WHERE kind = ? AND name = ?',
        )
        .get(kind, name);
      const revision = (last?.r ?? 0) + 1;
      const at = new Date().toISOString();
      const action: ChangeAction = forced ?? (current === undefined ? 'create' : 'update');
      const specText = spec === null ? null : JSON.stringify(spec);
      this.db
        .prepare(
          'INSERT INTO revisions (kind, name, revision, action, spec, author, at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(kind, name, revision, action, specText, options.author, at);
      const entry: RuleRevision = { kind, name, revision, action, spec, author: options.author, at };
      if (spec === null) {
        this.db.prepare('DELETE FROM rules WHERE kind = ? AND name = ?').run(kind, name);
        return { revision: entry, rule: undefined };
      }
      this.db
        .prepare(
          `INSERT INTO rules (kind, name, spec, revision, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec, revision = excluded.revision,
             updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        )
        .run(kind, name, specText, revision, at, options.author);
      return {
        revision: entry,
        rule: { kind, name, spec, revision, updatedAt: at, updatedBy: options.author },
      };
    })();
    if (change === undefined) return undefined;
    for (const listener of this.listeners) listener(change);
    return change.rule;
  }
}
