import type { SecureContext } from 'node:tls';

/** What a mint produces: the context and when to replace it. */
export interface MintedContext {
  readonly context: SecureContext;
  /** Epoch ms after which a replacement is minted in the background (the old one is still served). */
  readonly renewAt: number;
  /** Epoch ms after which the context must not be served any more (leaf notAfter). */
  readonly expiresAt: number;
}

interface Entry {
  minted: MintedContext | null;
  pending: Promise<SecureContext> | null;
}

function ignore(): void {}

/**
 * Bounded LRU of TLS secure contexts keyed by SNI servername, with single flight: concurrent first
 * requests for a host share one mint, and renewal happens in the background while the old leaf is valid.
 * Map insertion order is the recency order, so a hit is one delete + set.
 */
export class SecureContextCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #mint: (servername: string) => Promise<MintedContext>;
  readonly #clock: () => number;
  #hits = 0;
  #misses = 0;
  #mints = 0;

  readonly #admit: (servername: string) => void;

  /**
   * `admit` runs before a new name takes a cache slot and throws for names that can never be minted
   * (invalid or outside name constraints), so a flood of bad SNI values cannot evict good entries.
   */
  constructor(
    maxEntries: number,
    mint: (servername: string) => Promise<MintedContext>,
    clock: () => number,
    admit: (servername: string) => void,
  ) {
    this.#maxEntries = maxEntries;
    this.#mint = mint;
    this.#clock = clock;
    this.#admit = admit;
  }

  get size(): number {
    return this.#entries.size;
  }

  stats(): { size: number; hits: number; misses: number; mints: number } {
    return { size: this.#entries.size, hits: this.#hits, misses: this.#misses, mints: this.#mints };
  }

  get(servername: string): Promise<SecureContext> {
    const entries = this.#entries;
    const entry = entries.get(servername);
    if (entry !== undefined) {
      entries.delete(servername);
      entries.set(servername, entry);
      const minted = entry.minted;
      if (minted !== null) {
        const now = this.#clock();
        if (now < minted.renewAt) {
          this.#hits++;
          return Promise.resolve(minted.context);
        }
        if (now < minted.expiresAt) {
          this.#hits++;
          if (entry.pending === null) this.#start(servername, entry).catch(ignore);
          return Promise.resolve(minted.context);
        }
      }
      this.#misses++;
      return entry.pending ?? this.#start(servername, entry);
    }
    this.#misses++;
    try {
      this.#admit(servername);
    } catch (error) {
      return Promise.reject(error);
    }
    const fresh: Entry = { minted: null, pending: null };
    entries.set(servername, fresh);
    if (entries.size > this.#maxEntries) {
      // The first key in a Map is the least recently used one.
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    return this.#start(servername, fresh);
  }

  clear(): void {
    this.#entries.clear();
  }

  #start(servername: string, entry: Entry): Promise<SecureContext> {
    this.#mints++;
    const pending = this.#mint(servername).then(
      (minted) => {
        entry.minted = minted;
        entry.pending = null;
        return minted.context;
      },
      (error: unknown) => {
        entry.pending = null;
        // A failed first mint leaves nothing cached, so the next request retries instead of seeing a stale error.
        if (entry.minted === null && this.#entries.get(servername) === entry)
          this.#entries.delete(servername);
        throw error;
      },
    );
    entry.pending = pending;
    return pending;
  }
}
