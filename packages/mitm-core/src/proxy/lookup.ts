import type { LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { ProxyOptionsError } from './errors.js';

type LookupCallback = Parameters<LookupFunction>[2];

/** A resolution failure as node:dns reports one, so upstream classification treats it alike (502 unreachable). */
function lookupFailure(hostname: string, reason: string, cause?: unknown): NodeJS.ErrnoException {
  return Object.assign(new Error(`lookup ${hostname}: ${reason}`, { cause }), {
    code: 'ENOTFOUND',
    hostname,
  });
}

function addressEntry(value: unknown): LookupAddress | undefined {
  if (typeof value === 'string') {
    const family = isIP(value);
    return family === 0 ? undefined : { address: value, family };
  }
  const address = (value as { address?: unknown } | null)?.address;
  if (typeof address !== 'string') return undefined;
  const family = isIP(address);
  return family === 0 ? undefined : { address, family };
}

/**
 * The `lookup` option as every dial and the loop guard use it: undefined stays undefined (node's default,
 * dns.lookup). A caller's function is wrapped so that what it does wrong fails one dial instead of the
 * process: node:net runs the lookup on a later tick and reads its answer without checks, so a throw or a
 * malformed answer would be an uncaught exception. A throw, an empty answer or one with an entry that is
 * not an IP address → ENOTFOUND; a second callback is ignored. A single address given where node asked
 * for a list (`all: true`, as Node 20's happy-eyeballs dialling does) becomes a list of one, and a list
 * where one was asked for gives its first entry, so a simple map-based resolver works either way.
 */
export function upstreamLookupOption(value: unknown): LookupFunction | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') {
    throw new ProxyOptionsError(`lookup must be a function (node:net's LookupFunction), got ${typeof value}`);
  }
  const resolve = value as LookupFunction;
  return (hostname, options, callback: LookupCallback) => {
    let answered = false;
    const answer: LookupCallback = (error, address) => {
      if (answered) return;
      answered = true;
      if (error !== null && error !== undefined) {
        callback(error, '', 0);
        return;
      }
      const entries = (Array.isArray(address) ? address : [address]).map(addressEntry);
      const usable = entries.filter((entry): entry is LookupAddress => entry !== undefined);
      const first = usable[0];
      if (first === undefined || usable.length !== entries.length) {
        callback(
          lookupFailure(hostname, 'the lookup function answered something other than IP addresses'),
          '',
          0,
        );
        return;
      }
      if (options.all === true) callback(null, usable);
      else callback(null, first.address, first.family);
    };
    try {
      resolve(hostname, options, answer);
    } catch (error) {
      answer(
        lookupFailure(
          hostname,
          `the lookup function threw: ${(error as Error)?.message ?? String(error)}`,
          error,
        ),
        '',
        0,
      );
    }
  };
}
