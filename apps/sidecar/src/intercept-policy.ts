import type { InterceptContext } from '@httpmesh/mitm-core';
import type { InterceptRuleSpec } from './rules.js';

/**
 * Per-connection decision "terminate TLS for this host?". Exact domains win over `*.x` wildcards; a
 * wildcard covers exactly one more label (rule-sync's model). Unlisted hosts pass through untouched.
 * Two map lookups, no regex: it runs once per TLS connection.
 */
export class InterceptPolicy {
  readonly #exact = new Map<string, InterceptRuleSpec>();
  readonly #wildcard = new Map<string, InterceptRuleSpec>();

  /** Some intercept rule turns upstream certificate verification off. */
  readonly hasInsecureUpstream: boolean;

  constructor(rules: readonly InterceptRuleSpec[]) {
    this.hasInsecureUpstream = rules.some((r) => r.action === 'intercept' && !r.upstreamTlsVerify);
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

  /**
   * Transparent mode's decision for one redirected connection. Plain HTTP is always parsed and measured
   * (mitm-core asks with the original destination IP, or the Host header without the addon). TLS is
   * terminated for an SNI name the rules intercept; a TLS client that sends no SNI only when a rule covers
   * its original destination address, since nothing else says which service it meant: otherwise it passes
   * through untouched rather than being handed a certificate for a bare IP.
   */
  decideTransparent(host: string, context: InterceptContext): boolean {
    if (!context.tls) return true;
    if (context.serverName !== undefined) return this.intercepts(context.serverName);
    return this.intercepts(context.originalDestination?.address ?? host);
  }
}
