import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where a connection was headed before iptables REDIRECT/DNAT sent it to us. */
export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export type OriginalDestinationLogger = (message: string) => void;

export interface OriginalDestinationReaderOptions {
  /**
   * Absolute path of the compiled addon. Default: build/Release/original_dst.node of this package, found
   * from `import.meta.url`. Bundled or single-executable builds have no package directory: point this at
   * the addon shipped beside the binary, e.g. `join(dirname(process.execPath), 'original_dst.node')`.
   */
  readonly addonPath?: string;
  /** Receives the single line logged when the addon is unavailable. Default: console.warn. */
  readonly logger?: OriginalDestinationLogger;
}

export interface OriginalDestinationReader {
  /** True when the addon loaded, i.e. SO_ORIGINAL_DST can be read. Loads it on first use. */
  supported(): boolean;
  /**
   * The pre-NAT destination of an accepted TCP socket, or null when it cannot be known (no addon, no fd,
   * or no conntrack entry). For a connection that was not redirected this is simply the local address.
   */
  read(socket: Socket): OriginalDestination | null;
  /** Same as `read` for a raw file descriptor. */
  readFd(fd: number): OriginalDestination | null;
}

interface Addon {
  originalDst(fd: number): { address: string; port: number; family: number };
}

/**
 * Resolved lazily and defensively: in a bundle or single executable `import.meta.url` may be missing or not
 * a file URL, and that must only disable the addon (with the usual log line), never fail the import.
 */
function defaultAddonPath(): string {
  return fileURLToPath(new URL('../../build/Release/original_dst.node', import.meta.url));
}

function defaultLogger(message: string): void {
  console.warn(message);
}

/** The fd of a net.Socket's TCP handle (libuv exposes it on Unix as `_handle.fd`); -1 when there is none. */
function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

export function createOriginalDestinationReader(
  options?: OriginalDestinationReaderOptions,
): OriginalDestinationReader {
  const logger = options?.logger ?? defaultLogger;
  // undefined: not tried yet; null: tried and unavailable (logged once).
  let addon: Addon | null | undefined;

  function load(): Addon | null {
    if (addon !== undefined) return addon;
    try {
      const addonPath = resolve(options?.addonPath ?? defaultAddonPath());
      // process.dlopen rather than require: works the same from ESM, CJS bundles and single executables.
      const holder: { exports: Partial<Addon> } = { exports: {} };
      process.dlopen(holder, addonPath);
      const loaded = holder.exports;
      if (typeof loaded.originalDst !== 'function') throw new Error('addon has no originalDst export');
      addon = loaded as Addon;
    } catch (error) {
      addon = null;
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      logger(
        `[httpmesh/mitm-core] SO_ORIGINAL_DST addon unavailable (${reason}); transparent mode falls back to SNI/Host for the original destination`,
      );
    }
    return addon;
  }

  function readFd(fd: number): OriginalDestination | null {
    const native = load();
    if (native === null || !Number.isInteger(fd) || fd < 0) return null;
    try {
      const result = native.originalDst(fd);
      return { address: result.address, port: result.port, family: result.family === 6 ? 6 : 4 };
    } catch {
      // ENOENT (no conntrack entry), ENOPROTOOPT (conntrack not loaded), EBADF/ENOTSOCK: nothing to report.
      return null;
    }
  }

  return {
    supported: () => load() !== null,
    read: (socket) => readFd(socketFd(socket)),
    readFd,
  };
}

let defaultReader: OriginalDestinationReader | undefined;

function reader(): OriginalDestinationReader {
  defaultReader ??= createOriginalDestinationReader();
  return defaultReader;
}

/** Pre-NAT destination of a socket redirected by iptables, or null (see OriginalDestinationReader.read). */
export function getOriginalDestination(socket: Socket): OriginalDestination | null {
  return reader().read(socket);
}

/** Whether the SO_ORIGINAL_DST addon is available in this process. */
export function originalDestinationSupported(): boolean {
  return reader().supported();
}
