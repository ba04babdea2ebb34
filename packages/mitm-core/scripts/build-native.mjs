// Builds the optional SO_ORIGINAL_DST addon with node-gyp, offline: the Node headers are taken from the
// running Node's install prefix when present (Debian/NodeSource installs put them in <prefix>/include/node).
// A failed build never fails the package build: the TypeScript loader falls back and logs one line.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

if (process.platform !== 'linux') {
  console.log('[mitm-core] original-destination addon skipped: SO_ORIGINAL_DST is Linux-only');
  process.exit(0);
}

// Node-API is ABI-stable across Node versions, so an addon newer than its sources needs no rebuild (this also
// keeps concurrent package builds from deleting each other's build/ directory).
const addon = join(packageDir, 'build', 'Release', 'original_dst.node');
const sources = ['binding.gyp', 'src/native/original_dst.c'].map((file) => join(packageDir, file));
if (existsSync(addon) && sources.every((file) => statSync(file).mtimeMs <= statSync(addon).mtimeMs)) {
  console.log('[mitm-core] original-destination addon up to date');
  process.exit(0);
}

const prefix = resolve(dirname(process.execPath), '..');
const nodedirArgs = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
// npm exports the path of its bundled node-gyp to scripts; outside npm, use the node-gyp bundled with the
// npm next to this Node, then one on PATH.
const besideNpm = join(
  prefix,
  'lib',
  'node_modules',
  'npm',
  'node_modules',
  'node-gyp',
  'bin',
  'node-gyp.js',
);
const bundled = process.env['npm_config_node_gyp'] ?? (existsSync(besideNpm) ? besideNpm : undefined);
const command = bundled && existsSync(bundled) ? process.execPath : 'node-gyp';
const args = bundled && existsSync(bundled) ? [bundled] : [];
args.push('rebuild', '--release', ...nodedirArgs);

const result = spawnSync(command, args, {
  cwd: packageDir,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  env: { ...process.env, npm_config_offline: 'true' },
});
if (result.status === 0) {
  console.log('[mitm-core] original-destination addon built: build/Release/original_dst.node');
} else {
  const reason = result.error
    ? result.error.message
    : `${result.stderr}`.trim().split('\n').slice(-5).join('\n');
  console.warn(
    `[mitm-core] original-destination addon NOT built (transparent mode will fall back):\n${reason}`,
  );
}
