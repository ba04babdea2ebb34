/** Runs `fn` `count` times sequentially (after `warmup` untimed runs) and returns per-call timings in ms. */
export async function sample(
  count: number,
  warmup: number,
  fn: (i: number) => Promise<unknown>,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const timings: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await fn(i);
    timings.push(performance.now() - start);
  }
  return timings;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export function summarize(timings: readonly number[]): Summary {
  const sorted = [...timings].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const mean = sorted.reduce((sum, t) => sum + t, 0) / sorted.length;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean };
}

export function formatSummary(label: string, summary: Summary): string {
  const f = (v: number) => v.toFixed(2).padStart(8);
  return `${label.padEnd(44)} n=${String(summary.n).padStart(4)}  p50 ${f(summary.p50)} ms  p99 ${f(summary.p99)} ms  mean ${f(summary.mean)} ms`;
}
