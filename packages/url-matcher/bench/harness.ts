/**
 * The timing loop shared by the benchmarks: lookups per CPU second, each contender in its own process.
 */
import { spawnSync } from 'node:child_process';

export type Lookup = (method: string, path: string) => unknown;

/** CPU time of this process in ms: unlike wall time it does not count time spent descheduled. */
export function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

export interface Runner {
  readonly name: string;
  /** Runs for about `ms` of wall time; returns lookups done and CPU ms spent. */
  run(ms: number): { ops: number; cpu: number };
}

/** Calls `lookup` on `requests` in turn, counting non-null answers (so the work cannot be optimised away). */
export function runner(name: string, lookup: Lookup, requests: ReadonlyArray<[string, string]>): Runner {
  const methods = requests.map((r) => r[0]);
  const paths = requests.map((r) => r[1]);
  const n = requests.length;
  let next = 0;
  let sink = 0;
  const batch = (count: number) => {
    for (let i = 0; i < count; i++) {
      if (lookup(methods[next] as string, paths[next] as string) !== null) sink++;
      next = next + 1 === n ? 0 : next + 1;
    }
  };
  return {
    name,
    run(ms) {
      let ops = 0;
      let size = 16;
      const wallEnd = performance.now() + ms;
      const cpuStart = cpuMs();
      while (performance.now() < wallEnd) {
        batch(size);
        ops += size;
        if (size < 4096) size *= 2;
      }
      if (sink === 0) throw new Error(`${name}: benchmark matched nothing`);
      return { ops, cpu: cpuMs() - cpuStart };
    },
  };
}

/** Ops per CPU second: a warm-up round, then the best of 5 rounds sharing `totalMs`. */
export function measure(r: Runner, totalMs: number): number {
  const rounds = 6;
  let best = 0;
  for (let round = 0; round < rounds; round++) {
    const { ops, cpu } = r.run(totalMs / (rounds - 1));
    if (round > 0 && cpu > 0) best = Math.max(best, (ops / cpu) * 1000);
  }
  return best;
}

/** Runs `script measure ...args` in a fresh node process (so no contender runs on JIT state shaped by another). */
export function measureInChild(script: string, args: readonly string[]): number {
  const child = spawnSync(process.execPath, ['--import', 'tsx', script, 'measure', ...args], {
    encoding: 'utf8',
    env: process.env,
  });
  const ops = Number(child.stdout.trim());
  if (child.status !== 0 || !(ops > 0))
    throw new Error(`measuring ${args.join(' ')} failed: ${child.stderr}`);
  return ops;
}
