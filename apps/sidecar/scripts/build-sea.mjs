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
 * mitm-core finds its SO_ORIGINAL_DST addon with `new URL('../../build/Release/original_dst.node', import.meta.url)`
 * and loads it with `createRequire(import.meta.url)`. A CommonJS bundle has no import.meta (esbuild would leave
 * it empty, and `new URL(x, undefined)` throws when the module loads), and inside the executable the package
 * directory does not exist. This rewrites both so the addon is looked up beside the executable
 * (dirname(process.execPath)/original_dst.node); when it is absent mitm-core logs its one line and transparent
 * mode falls back to SNI/Host. If mitm-core's loader changes shape, the build fails here rather than shipping
 * a binary that throws at start-up.
 */
const addonBesideBinary = {
  name: 'httpmesh-addon-beside-binary',
  setup(pluginBuild) {
    let rewritten = false;
    pluginBuild.onLoad(
      { filter: /[\\/]mitm-core[\\/]dist[\\/]native[\\/]original-destination\.js$/ },
      (args) => {
        const source = readFileSync(args.path, 'utf8');
        const addonUrl =
          /new URL\((['"])\.\.\/\.\.\/build\/Release\/original_dst\.node\1, import\.meta\.url\)/;
        if (!addonUrl.test(source)) {
          fail(`${args.path}: the addon path expression changed; update scripts/build-sea.mjs`);
        }
        const contents = source
          .replace(
            addonUrl,
            `require('node:url').pathToFileURL(require('node:path').join(require('node:path').dirname(process.execPath), ${JSON.stringify(ADDON_FILE)}))`,
          )
          .replaceAll('import.meta.url', `require('node:url').pathToFileURL(process.execPath).href`);
        rewritten = true;
        return { contents, loader: 'js' };
      },
    );
    pluginBuild.onEnd((result) => {
      if (result.errors.length === 0 && !rewritten) {
        fail('mitm-core native/original-destination.js was not bundled; the addon rewrite did not apply');
      }
    });
  },
};

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
  plugins: [addonBesideBinary],
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
// binary, where the rewritten loader looks. Node-API keeps it loadable by this Node.
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
