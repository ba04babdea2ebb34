import { RevisionNotFoundError } from '../errors.js';
import type { RuleKind } from '../rules.js';
import type { RuleRevision, Store, StoredRule, WriteOptions } from './types.js';

/** Rollback shared by both stores: find the target revision, then write it as a new revision. */
export async function rollbackVia(
  store: Store,
  write: (spec: RuleRevision['spec'], options: WriteOptions) => Promise<StoredRule | undefined>,
  kind: RuleKind,
  name: string,
  toRevision: number,
  options: WriteOptions,
): Promise<StoredRule | undefined> {
  const history = await store.history(kind, name);
  const target = history.find((entry) => entry.revision === toRevision);
  if (target === undefined) {
    throw new RevisionNotFoundError(`${kind} "${name}" has no revision ${toRevision}`);
  }
  return write(target.spec, options);
}
