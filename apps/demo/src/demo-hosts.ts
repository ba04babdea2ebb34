/**
 * Preload (`node --import …/demo-hosts.js`) that resolves the demo's host names inside a child process,
 * the way an /etc/hosts entry would (which needs root). HTTPMESH_DEMO_HOSTS is a JSON object
 * `{ "payments.demo.test": "127.0.0.1" }`; every other name goes to the real resolver. Only the demo's
 * sidecar gets it: intercept rules need real DNS names (not `localhost`, not IP literals).
 */
import dns, { type LookupAddress, type LookupOptions } from 'node:dns';

const table = new Map<string, string>(
  Object.entries(JSON.parse(process.env['HTTPMESH_DEMO_HOSTS'] ?? '{}') as Record<string, string>),
);

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

const realLookup = dns.lookup.bind(dns) as (host: string, options: LookupOptions, cb: LookupCallback) => void;

function demoLookup(
  hostname: string,
  options: LookupOptions | number | LookupCallback,
  callback?: LookupCallback,
): void {
  const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
  const opts: LookupOptions =
    typeof options === 'object' ? options : typeof options === 'number' ? { family: options } : {};
  const address = table.get(hostname.toLowerCase());
  if (address === undefined) {
    realLookup(hostname, opts, cb);
    return;
  }
  process.nextTick(() => {
    if (opts.all === true) cb(null, [{ address, family: 4 }]);
    else cb(null, address, 4);
  });
}

(dns as { lookup: unknown }).lookup = demoLookup;
const realPromiseLookup = dns.promises.lookup.bind(dns.promises);
(dns.promises as { lookup: unknown }).lookup = async (hostname: string, options?: LookupOptions) => {
  const address = table.get(hostname.toLowerCase());
  if (address === undefined) return realPromiseLookup(hostname, options ?? {});
  return options?.all === true ? [{ address, family: 4 }] : { address, family: 4 };
};
