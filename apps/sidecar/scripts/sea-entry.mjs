// Entry of the single executable. Node 20's SEA runs one CommonJS script, and CommonJS has no top-level
// await, so this replaces src/cli.ts (which awaits main at top level) for the bundle.
import { main } from '../dist/cli-main.js';
import { applyMemorySettings } from '../dist/v8-flags.js';

applyMemorySettings();
main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`httpmesh-sidecar: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  },
);
