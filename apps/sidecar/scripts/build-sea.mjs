// Builds dist/sea/httpmesh-sidecar, a single-file executable (Node single executable application):
//   1. esbuild bundles scripts/sea-entry.mjs (dist/cli-main.js and every workspace and npm dependency) into one
//      CommonJS file, since the SEA runs one CommonJS script whose `require` only loads built-in modules;
//   2. `node --experimental-sea-config` turns the bundle into a preparation blob;
//   3. a copy of this Node binary gets the blob injected by postject.
// Runs after `tsc -b` (it bundles dist/). Any failure fails the build: the binary is a release artefact, and a
// build that silently skipped it would only be noticed by whoever ships it.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const appDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(appDir, 'dist', 'sea');
// Built in a directory of its own, then renamed into place file by file: tests or a sidecar running the previous
// binary while a build runs keep working (a rename replaces a file atomically; the old inode lives on).
const workDir = join(appDir, 'dist', `.sea-build-${process.pid}`);
const bundlePath = join(workDir, 'httpmesh-sidecar.cjs');
const blobPath = join(workDir, 'httpmesh-sidecar.blob');
const seaConfigPath = join(workDir, 'sea-config.json');
const binaryPath = join(workDir, 'httpmesh-sidecar');
const ADDON_FILE = 'original_dst.node';
// The fuse string Node's binary carries to mark "a SEA blob may be injected" (Node's SEA documentation).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function fail(message) {
  console.error(`[sidecar:build-sea] FAILED: ${message}`);
  rmSync(workDir, { recursive: true, force: true });
  process.exit(1);
}

function step(message) {
  console.log(`[sidecar:build-sea] ${message}`);
}

/*
 * mitm-core's default addon path comes from `import.meta.url`, which a CommonJS bundle does not have. The sidecar
 * passes `originalDestinationAddonPath` (dirname(process.execPath)/original_dst.node) when it runs as a single
 * executable, so the default is never computed there; `import.meta.url` is defined as undefined (rather than left
 * an empty object, which esbuild reports as an error) and any other use of it still fails loudly at run time.
 */
mkdirSync(workDir, { recursive: true });

step('bundling dist/cli-main.js and its dependencies (esbuild, CommonJS)');
const result = await build({
  entryPoints: [join(appDir, 'scripts', 'sea-entry.mjs')],
  outfile: bundlePath,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: `node${process.versions.node.split('.')[0]}`,
  // A `require` left in the bundle for a non-builtin module would throw inside the executable, and an empty
  // import.meta breaks whatever reads it: both are errors, not warnings.
  logOverride: {
    'empty-import-meta': 'error',
    'unsupported-require-call': 'error',
    'unsupported-dynamic-import': 'error',
  },
  logLevel: 'warning',
  legalComments: 'eof',
  define: { 'import.meta.url': 'undefined' },
}).catch((error) => fail(`esbuild: ${error instanceof Error ? error.message : String(error)}`));
if (result.errors.length > 0) fail('esbuild reported errors');

step('preparing the SEA blob (node --experimental-sea-config)');
writeFileSync(
  seaConfigPath,
  `${JSON.stringify(
    {
      main: bundlePath,
      output: blobPath,
      disableExperimentalSEAWarning: true,
      // Compiled code in the blob: faster start-up; the blob is tied to this exact Node build anyway.
      useCodeCache: true,
    },
    null,
    2,
  )}\n`,
);
try {
  execFileSync(process.execPath, ['--experimental-sea-config', seaConfigPath], { stdio: 'inherit' });
} catch (error) {
  fail(`node --experimental-sea-config: ${error instanceof Error ? error.message : String(error)}`);
}

step(`copying ${process.execPath} and injecting the blob (postject)`);
const nodeBinary = readFileSync(process.execPath);
if (!nodeBinary.includes(SEA_FUSE)) {
  fail(`${process.execPath} has no SEA fuse (${SEA_FUSE}); this Node build cannot make single executables`);
}
copyFileSync(process.execPath, binaryPath);
chmodSync(binaryPath, 0o755);
try {
  await inject(binaryPath, 'NODE_SEA_BLOB', readFileSync(blobPath), { sentinelFuse: SEA_FUSE });
} catch (error) {
  fail(`postject: ${error instanceof Error ? error.message : String(error)}`);
}

// The addon is optional (mitm-core's build does not fail without it); when it was built, ship it beside the
// binary, where the sidecar points mitm-core. Node-API keeps it loadable by this Node.
const mitmCoreDir = dirname(createRequire(import.meta.url).resolve('@httpmesh/mitm-core/package.json'));
const builtAddon = join(mitmCoreDir, 'build', 'Release', ADDON_FILE);
if (existsSync(builtAddon)) {
  copyFileSync(builtAddon, join(workDir, ADDON_FILE));
  step(`copied ${ADDON_FILE} beside the binary`);
} else {
  step(`${builtAddon} not built: the binary falls back to SNI/Host in transparent mode`);
}

// The blob and the intermediate files are not needed to run; the bundle is kept for inspection.
rmSync(blobPath);
rmSync(seaConfigPath);

// Prove the artefact starts: a broken bundle would otherwise be found only at deploy time.
try {
  const help = execFileSync(binaryPath, ['--help'], { encoding: 'utf8', timeout: 30_000 });
  if (!help.includes('httpmesh-sidecar')) fail(`${binaryPath} --help printed no usage:\n${help}`);
} catch (error) {
  fail(`${binaryPath} --help: ${error instanceof Error ? error.message : String(error)}`);
}
mkdirSync(outDir, { recursive: true });
const built = readdirSync(workDir);
for (const stale of readdirSync(outDir))
  if (!built.includes(stale)) rmSync(join(outDir, stale), { force: true });
for (const file of built) renameSync(join(workDir, file), join(outDir, file));
rmSync(workDir, { recursive: true, force: true });
step(`built ${join(outDir, 'httpmesh-sidecar')}`);
