#!/usr/bin/env node
// The one test command (`npm test`): lint, build, typecheck and test every project through nx,
// then print one line totalling every package's vitest JSON report, so a run that executed
// no tests, or skipped some under CI, is visible at a glance and fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const projectDirs = ['packages', 'apps']
  .filter((d) => existsSync(join(root, d)))
  .flatMap((d) => readdirSync(join(root, d)).map((p) => join(d, p)))
  .filter((dir) => {
    const manifest = join(root, dir, 'package.json');
    if (!existsSync(manifest)) return false;
    return Boolean(JSON.parse(readFileSync(manifest, 'utf8')).scripts?.test);
  });

function run(cmd, args) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  return (
    spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false' } })
      .status ?? 1
  );
}

const lintStatus = run('npx', ['biome', 'check', '.']);
// A report left over from an earlier run must not count; nx restores it from cache when the run is cached.
for (const dir of projectDirs) rmSync(join(root, dir, '.test-results'), { recursive: true, force: true });
// One task at a time: as root, end-to-end tests in several projects change machine-wide state (the system trust
// store and the JDK's cacerts it rewrites, /run/httpmesh), and on two cores parallel suites only contend.
const nxStatus = run('npx', [
  'nx',
  'run-many',
  '-t',
  'build',
  'typecheck',
  'test',
  '--parallel=1',
  '--outputStyle=stream',
]);

let passed = 0;
let failed = 0;
let skipped = 0;
const problems = [];
const skippedNames = [];
for (const dir of projectDirs) {
  const file = join(root, dir, '.test-results', 'vitest.json');
  if (!existsSync(file)) {
    problems.push(`${dir}: no test report (its tests did not run)`);
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  if (report.numTotalTests === 0) problems.push(`${dir}: ran no test`);
  for (const suite of report.testResults ?? []) {
    for (const t of suite.assertionResults ?? []) {
      if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo')
        skippedNames.push(`${dir}: ${t.fullName}`);
    }
  }
  if (report.numFailedTestSuites > 0 && report.numFailedTests === 0)
    problems.push(`${dir}: a test file failed to load`);
}
if (lintStatus !== 0) problems.push('lint (biome check) failed');
if (nxStatus !== 0) problems.push('nx run-many (build, typecheck or test) failed');
if (process.env.CI && skipped > 0) {
  problems.push(`CI must run every test, but ${skipped} were skipped:\n  ${skippedNames.join('\n  ')}`);
}
if (passed === 0) problems.push('no test passed');
for (const p of problems) console.error(`test-all: ${p}`);
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(problems.length > 0 || failed > 0 ? 1 : 0);
