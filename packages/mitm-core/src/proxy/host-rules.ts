import { ProxyOptionsError } from './errors.js';

/** Host list (`api.x.com`, `*.x.com` = any subdomain of x.com) or a predicate evaluated per exchange. */
export type HostRule = readonly string[] | ((host: string) => boolean);

/**
 * Compiles a host rule into a predicate. `undefined` means "no host matches" so the caller can skip the
 * call entirely on the hot path. List entries are validated here: a typo must fail loudly at configuration
 * time, not silently turn verification on or off.
 */
export function compileHostRule(
  rule: HostRule | undefined,
  option: string,
): ((host: string) => boolean) | undefined {
  if (rule === undefined) return undefined;
  if (typeof rule === 'function') return rule;
  if (!Array.isArray(rule))
    throw new ProxyOptionsError(`${option} must be an array of host names or a function`);
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const entry of rule as readonly unknown[]) {
    if (typeof entry !== 'string') throw new ProxyOptionsError(`${option}: entries must be strings`);
    const lower = entry.trim().toLowerCase();
    const wildcard = lower.startsWith('*.');
    const name = wildcard ? lower.slice(2) : lower;
    if (
      name === '' ||
      name.includes('*') ||
      /[\s/@]/.test(name) ||
      name.startsWith('.') ||
      name.endsWith('.')
    ) {
      throw new ProxyOptionsError(`${option}: invalid host pattern ${JSON.stringify(entry)}`);
    }
    if (wildcard) suffixes.push(`.${name}`);
    else exact.add(name);
  }
  if (exact.size === 0 && suffixes.length === 0) return undefined;
  return (host) => {
    const lower = host.toLowerCase();
    if (exact.has(lower)) return true;
    for (const suffix of suffixes) if (lower.endsWith(suffix)) return true;
    return false;
  };
}
