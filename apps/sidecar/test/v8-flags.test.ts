import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const child = fileURLToPath(new URL('./fixtures/young-generation.ts', import.meta.url));

function largestYoungGeneration(mode: 'cap' | 'control'): { capBytes: number; largest: number } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', child, mode], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as { capBytes: number; largest: number };
}

describe('capYoungGeneration', () => {
  test('the same allocation grows the young generation past the cap without it, not with it', () => {
    const control = largestYoungGeneration('control');
    const capped = largestYoungGeneration('cap');
    // Without the cap V8 doubles it up to its default maximum (32 MB for both semi-spaces).
    expect(control.largest).toBeGreaterThan(2 * control.capBytes);
    // With it: frozen at the cap, at worst one doubling later (the check runs every 100 ms).
    expect(capped.largest).toBeLessThanOrEqual(2 * capped.capBytes);
  });
});
