import type { Resource, RuleSyncServer } from '@httpmesh/rule-sync';
import type { AlertEngine } from './alerts.js';
import { RuleValidationError } from './errors.js';
import { compileRule } from './rules.js';
import type { CompiledRule } from './rules.js';
import type { Store, StoreChange } from './store/types.js';

export interface DistributorLogger {
  warn(message: string): void;
}

/**
 * Keeps the rule-sync server's snapshot cache equal to the store: the full set at start, then every
 * committed change the store reports (on etcd, also other replicas' changes), plus a periodic full
 * resync that closes any gap a lost watch may leave. Sidecar groups are services: a rule reaches the
 * services in its `spec.services`, or every service when that is empty.
 */
export class RuleDistributor {
  private readonly rules = new Map<string, CompiledRule>();
  private readonly services = new Set<string>();
  private unwatch: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Rules in the store that no longer validate (e.g. written by an older version); not distributed. */
  readonly invalid = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly server: RuleSyncServer,
    private readonly alerts: AlertEngine | undefined,
    private readonly logger: DistributorLogger,
  ) {}

  async start(resyncIntervalMs: number): Promise<void> {
    this.server.on('connected', (status) => {
      if (this.services.has(status.node.service)) return;
      this.services.add(status.node.service);
      // First sidecar of a service: give its group the current set at once (no debounce wait).
      this.publishService(status.node.service);
      this.server.flush();
    });
    // Subscribe before the initial load so nothing committed in between is missed (replays are idempotent).
    this.unwatch = this.store.watch((change) => this.apply(change));
    await this.resync();
    if (resyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.resync().catch((err: unknown) =>
          this.logger.warn(`rule resync failed: ${(err as Error).message}`),
        );
      }, resyncIntervalMs);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.unwatch?.();
    clearInterval(this.resyncTimer);
  }

  /** Reloads everything from the store and republishes (unchanged groups are not re-pushed by rule-sync). */
  async resync(): Promise<void> {
    const stored = await this.store.list();
    const next = new Map<string, CompiledRule>();
    this.invalid.clear();
    for (const rule of stored) {
      const compiled = this.compile(rule.kind, rule.name, rule.spec);
      if (compiled !== undefined) next.set(`${rule.kind}/${rule.name}`, compiled);
    }
    this.rules.clear();
    for (const [key, compiled] of next) this.rules.set(key, compiled);
    this.syncAlerts();
    this.publishAll();
  }

  private compile(kind: string, name: string, spec: unknown): CompiledRule | undefined {
    try {
      return compileRule(kind, name, spec);
    } catch (err) {
      if (!(err instanceof RuleValidationError)) throw err;
      this.invalid.set(`${kind}/${name}`, err.message);
      this.logger.warn(`stored ${kind} "${name}" is invalid and is not distributed: ${err.message}`);
      return undefined;
    }
  }

  private apply(change: StoreChange): void {
    const { kind, name } = change.revision;
    const key = `${kind}/${name}`;
    const previous = this.rules.get(key);
    if (change.rule === undefined) {
      this.rules.delete(key);
      this.invalid.delete(key);
    } else {
      const compiled = this.compile(kind, name, change.rule.spec);
      if (compiled === undefined) return;
      this.rules.set(key, compiled);
    }
    if (kind === 'AlertRule') {
      this.syncAlerts();
      return;
    }
    const affected = new Set<string>();
    for (const rule of [previous, this.rules.get(key)]) {
      if (rule === undefined) continue;
      if (rule.services.length === 0) for (const s of this.services) affected.add(s);
      else for (const s of rule.services) affected.add(s);
    }
    for (const service of affected) this.publishService(service);
  }

  private syncAlerts(): void {
    if (this.alerts === undefined) return;
    const names = new Set<string>();
    for (const rule of this.rules.values()) {
      if (rule.alert === undefined) continue;
      names.add(rule.document.name);
      this.alerts.setRule(rule.document.name, rule.alert);
    }
    for (const status of this.alerts.list()) if (!names.has(status.name)) this.alerts.removeRule(status.name);
  }

  private publishAll(): void {
    for (const rule of this.rules.values()) for (const s of rule.services) this.services.add(s);
    for (const service of this.services) this.publishService(service);
  }

  /** Resources a service's sidecars should hold. */
  resourcesFor(service: string): Resource[] {
    const out: Resource[] = [];
    for (const rule of this.rules.values()) {
      if (rule.resource === undefined) continue;
      if (rule.services.length === 0 || rule.services.includes(service)) out.push(rule.resource);
    }
    return out;
  }

  private publishService(service: string): void {
    this.server.setResources(service, this.resourcesFor(service));
  }
}
