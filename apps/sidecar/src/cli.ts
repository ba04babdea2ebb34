#!/usr/bin/env node
import { main } from './cli-main.js';
import { applyMemorySettings } from './v8-flags.js';

applyMemorySettings();
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
