/**
 * `run --young-generation-mb` end to end: the built bin (dist/cli.js) is started as a real process, proxies
 * bounded HTTP traffic, and its young generation is watched from inside the process. The sidecar exposes no
 * heap figures (its admin endpoint has /metrics, /connections and /config, none with V8 spaces), so rather
 * than widen its surface the test preloads a probe with `node --import` (as lazy-load.test.ts does): it
 * samples `v8.getHeapSpaceStatistics()` new_space every 10 ms and writes the largest size seen to a file.
 * A control sidecar without the flag, fed the same traffic, shows the traffic does grow the young
 * generation past the cap, so the capped run's bound comes from the flag, not from too little traffic.
 */
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runLoad, startSidecarProcess, tempDir, viaProxy } from './plugins-harness.js';

const CAP_MB = 8;
const CAP_BYTES = CAP_MB * 1024 * 1024;
const RULES = `routes:\n  - host: 127.0.0.1\n    patterns: ['/items/:id']\n`;

// Preloaded into the sidecar process. Written to the test's temporary directory (see beforeAll).
const PROBE = `
import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
const out = process.env.YOUNG_GENERATION_FILE;
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
let largest = newSpace();
let samples = 0;
const record = () => writeFileSync(out, JSON.stringify({ largest, samples, pid: process.pid }));
record();
setInterval(() => {
  samples++;
  const now = newSpace();
  if (now > largest) {
    largest = now;
    record();
  }
}, 10).unref();
process.on('exit', () => {
  largest = Math.max(largest, newSpace());
  record();
});
`;

interface Observed {
  /** Largest new_space size the probe saw, in bytes. */
  readonly largest: number;
  readonly samples: number;
  readonly pid: number;
}

let dir: { dir: string; remove(): void };
let probe = '';
let upstream: Server;
let upstreamPort = 0;
// Responses with a body large enough that every request allocates (headers, chunks, metrics) in the proxy.
const BODY = 'x'.repeat(16 * 1024);

beforeAll(async () => {
  dir = tempDir('httpmesh-sidecar-young-');
  probe = join(dir.dir, 'young-generation-probe.mjs');
  writeFileSync(probe, PROBE);
  upstream = createServer((req, res) => {
    res.setHeader('x-path', req.url ?? '');
    res.end(BODY);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(() => {
  upstream?.close();
  dir?.remove();
});

function readObserved(file: string): Observed | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Observed;
  } catch {
    return undefined; // caught mid-write; the next read sees the whole file
  }
}

/**
 * Starts a probed sidecar with `args`, sends at least `count` requests (continuing while `until` says so, to
 * at most 20 000 requests and 40 s), stops it (exit 0) and returns what the probe saw and how many were sent.
 */
async function underTraffic(
  name: string,
  args: readonly string[],
  count: number,
  until?: (observed: Observed | undefined) => boolean,
): Promise<{ observed: Observed; sent: number }> {
  const file = join(dir.dir, `${name}.json`);
  const sidecarDir = join(dir.dir, name);
  mkdirSync(sidecarDir, { recursive: true });
  const sidecar = await startSidecarProcess({
    dir: sidecarDir,
    rules: RULES,
    nodeArgs: ['--import', probe],
    env: { YOUNG_GENERATION_FILE: file },
    args,
  });
  let checkedAt = 0;
  let keepGoing = until !== undefined;
  let n = 0;
  const load = await runLoad({
    count,
    concurrency: 8,
    maxCount: 20_000,
    maxMs: 40_000,
    send: () => viaProxy(sidecar.proxyPort, upstreamPort, `/items/${n++}`),
    keepGoing: () => {
      // The probe's file changes only when the young generation grows; a look every 50 ms is enough.
      if (until !== undefined && Date.now() - checkedAt >= 50) {
        checkedAt = Date.now();
        keepGoing = until(readObserved(file));
      }
      return keepGoing;
    },
  });
  expect(load.failures.slice(0, 3)).toEqual([]);
  expect(load.replies.every((r) => r.body.length === BODY.length)).toBe(true);
  expect(await sidecar.stop()).toBe(0);
  const observed = readObserved(file);
  expect(observed?.pid).toBe(sidecar.child.pid);
  // The probe ran in this sidecar process and kept sampling until it exited.
  expect(observed?.samples).toBeGreaterThan(10);
  return { observed: observed as Observed, sent: load.sent };
}

describe('run --young-generation-mb (built bin, real process, probed heap)', () => {
  test(`--young-generation-mb ${CAP_MB}: under traffic the young generation stops at the cap; the same traffic grows it past twice the cap without the flag`, async () => {
    // Control first: traffic until the young generation has grown past one doubling beyond the cap.
    const control = await underTraffic('control', [], 500, (o) => (o?.largest ?? 0) <= 2 * CAP_BYTES);
    expect(control.observed.largest).toBeGreaterThan(2 * CAP_BYTES);

    // The same amount of traffic (at least) through a sidecar started with the flag.
    const capped = await underTraffic('capped', ['--young-generation-mb', String(CAP_MB)], control.sent);
    expect(capped.sent).toBeGreaterThanOrEqual(control.sent);
    // Frozen once it reaches the cap; at worst one doubling later (capYoungGeneration checks every 100 ms).
    expect(capped.observed.largest).toBeLessThanOrEqual(2 * CAP_BYTES);
    // And it did grow up to the cap: the traffic pushed it there, the flag stopped it.
    expect(capped.observed.largest).toBeGreaterThanOrEqual(CAP_BYTES);
  }, 120_000);
});
