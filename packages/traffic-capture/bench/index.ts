// Rule-change latency of a real capture: how long install, update (dnsmasq restart + ipset flush) and
// remove take in a throw-away network namespace. Needs root; prints a note and exits otherwise.
// Run: npm run bench -w @httpmesh/traffic-capture
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  renderDnsmasqConf,
  renderIptablesRestore,
  resolveCaptureConfig,
  TrafficCapture,
} from '../src/index.js';

const config = resolveCaptureConfig({ inboundPorts: [8080, 9090], excludeCidrs: ['10.0.0.0/8'] });
const renders = 20_000;
let t = performance.now();
for (let i = 0; i < renders; i++) {
  renderIptablesRestore(config);
  renderDnsmasqConf(config, { upstream: '10.0.0.2', suffixes: ['a.com', 'b.com'], pidFile: '/p' });
}
console.log(
  `render iptables+dnsmasq text: ${(((performance.now() - t) / renders) * 1000).toFixed(1)} µs each`,
);

if (process.getuid?.() !== 0) {
  console.log('not root: skipping the namespace timings');
  process.exit(0);
}
const ns = `hmbench${process.pid % 100000}`;
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-tc-bench-'));
execFileSync('ip', ['netns', 'add', ns]);
execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
const capture = new TrafficCapture({ netns: ns, stateDir: dir, dnsUpstream: '10.203.250.1' });
try {
  const rounds = 10;
  const time = async (label: string, fn: () => Promise<unknown>, n = rounds) => {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      t = performance.now();
      await fn();
      samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    console.log(
      `${label}: median ${samples[Math.floor(n / 2)]?.toFixed(1)} ms, max ${samples.at(-1)?.toFixed(1)} ms (${n} runs)`,
    );
  };
  await time('install (first, then idempotent re-runs)', () => capture.install([{ domain: '*.a.test' }]));
  let flip = false;
  await time('update (domain added / removed: dnsmasq restart, ipset flush)', () => {
    flip = !flip;
    return capture.update(flip ? [{ domain: '*.a.test' }, { domain: '*.b.test' }] : [{ domain: '*.a.test' }]);
  });
  await time('remove', () => capture.remove(), 1);
} finally {
  await capture.remove().catch(() => {});
  execFileSync('ip', ['netns', 'delete', ns]);
  rmSync(dir, { recursive: true, force: true });
}
