/**
 * Remembers hosts whose clients refused our minted certificate (certificate pinning), so later
 * connections to them are spliced through untouched. Bounded in size and time: the oldest entry
 * is evicted first, entries expire after `ttlMs`.
 */
export class PinnedHostMemory {
  readonly #expiry = new Map<string, number>();
  readonly #maxHosts: number;
  readonly #ttlMs: number;

  constructor(maxHosts: number, ttlMs: number) {
    this.#maxHosts = Math.max(1, maxHosts);
    this.#ttlMs = ttlMs;
  }

  get size(): number {
    return this.#expiry.size;
  }

  remember(host: string, now: number = Date.now()): void {
    this.#expiry.delete(host); // re-insert so it becomes the newest
    this.#expiry.set(host, now + this.#ttlMs);
    while (this.#expiry.size > this.#maxHosts) {
      const oldest = this.#expiry.keys().next();
      if (oldest.done) break;
      this.#expiry.delete(oldest.value);
    }
  }

  has(host: string, now: number = Date.now()): boolean {
    const expiresAt = this.#expiry.get(host);
    if (expiresAt === undefined) return false;
    if (expiresAt <= now) {
      this.#expiry.delete(host);
      return false;
    }
    return true;
  }

  forget(host: string): void {
    this.#expiry.delete(host);
  }
}
