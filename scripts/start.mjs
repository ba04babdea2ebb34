#!/usr/bin/env node
// `npm start`: builds what the demo needs (nx, cached), then runs the whole mesh on 127.0.0.1:
// control plane + dashboard, a sidecar in explicit-proxy mode, two demo services and a traffic generator.
// Arguments after `npm start --` go to the demo (`npm start -- --help`).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const require = createRequire(join(root, 'package.json'));
const nxPackage = require.resolve('nx/package.json');
const nxBin = join(dirname(nxPackage), require(nxPackage).bin.nx);

if (!args.includes('--help')) {
  process.stdout.write('[start] building @httpmesh/demo and what it depends on (nx run-many -t build)…\n');
  const code = await new Promise((resolve) => {
    const nx = spawn(
      process.execPath,
      [
        nxBin,
        'run-many',
        '-t',
        'build',
        '--projects=@httpmesh/demo,@httpmesh/control-plane,@httpmesh/sidecar,@httpmesh/dashboard',
        '--output-style=static',
      ],
      { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NX_TUI: 'false' } },
    );
    // Ctrl-C during the build reaches nx through the terminal's process group; just report its end.
    nx.once('exit', (c, signal) => resolve(signal === null ? c : 130));
  });
  if (code !== 0) {
    process.stderr.write(`[start] build failed (exit ${code})\n`);
    process.exit(typeof code === 'number' ? code : 1);
  }
}

process.chdir(root);
const { runDemoCli } = await import(pathToFileURL(join(root, 'apps', 'demo', 'dist', 'index.js')).href);
process.exit(await runDemoCli(args));
