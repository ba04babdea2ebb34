import type { InterceptRuleSpec } from './rules.js';

/**
 * Per-connection decision "terminate TLS for this host?". Exact domains win over `*.x` wildcards; a
 * wildcard covers exactly one more label (rule-sync's model). Unlisted hosts pass through untouched.
 * Two map lookups, no regex: it runs once per TLS connection.
 */
export class InterceptPolicy {
  readonly #exact = new Map<string, InterceptRuleSpec>();
  readonly #wildcard = new Map<string, InterceptRuleSpec>();

  constructor(rules: readonly InterceptRuleSpec[]) {
    for (const rule of rules) {
      const domain = rule.domain.toLowerCase().replace(/\.$/, '');
      if (domain.startsWith('*.')) this.#wildcard.set(domain.slice(2), rule);
      else this.#exact.set(domain, rule);
    }
  }

  /** The rule governing `host` (lower-case, no port), or undefined. */
  ruleFor(host: string): InterceptRuleSpec | undefined {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    const dot = host.indexOf('.');
    return dot < 0 ? undefined : this.#wildcard.get(host.slice(dot + 1));
  }

  intercepts(host: string): boolean {
    return this.ruleFor(host.toLowerCase())?.action === 'intercept';
  }
}
