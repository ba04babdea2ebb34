import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';

const preload = pathToFileURL(
  join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'demo-hosts.js'),
).href;

function runWith(hosts: string | undefined, script: string) {
  const env = { ...process.env };
  if (hosts === undefined) delete env['HTTPMESH_DEMO_HOSTS'];
  else env['HTTPMESH_DEMO_HOSTS'] = hosts;
  return spawnSync(process.execPath, ['--import', preload, '--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
    timeout: 20_000,
  });
}

const LOOKUPS = `
import dns from 'node:dns';
import net from 'node:net';
const cb = (name, opts) => new Promise((ok) => dns.lookup(name, opts, (e, a) => ok(e ? e.code : a)));
const out = {
  one: await cb('Shop.Demo.Test', {}),
  all: await cb('shop.demo.test', { all: true }),
  promise: await dns.promises.lookup('shop.demo.test').catch((e) => e.code),
  other: await cb('localhost', { family: 4 }),
  unknown: await cb('nothing.invalid', {}),
};
// net.connect goes through the same lookup: a server on 127.0.0.1 is reached by the demo name.
const server = net.createServer((s) => s.end('hi'));
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
out.connected = await new Promise((ok) => {
  const s = net.connect(server.address().port, 'shop.demo.test');
  s.on('data', (d) => ok(String(d)));
  s.on('error', (e) => ok(e.code));
});
server.close();
console.log(JSON.stringify(out));
`;

describe('demo-hosts preload', () => {
  test('resolves the demo names (case-insensitively) for callbacks, promises and net.connect; others go to DNS', () => {
    const result = runWith(JSON.stringify({ 'shop.demo.test': '127.0.0.1' }), LOOKUPS);
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(out['one']).toBe('127.0.0.1');
    expect(out['all']).toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(out['promise']).toEqual({ address: '127.0.0.1', family: 4 });
    expect(out['other']).toBe('127.0.0.1');
    expect(out['unknown']).toBe('ENOTFOUND');
    expect(out['connected']).toBe('hi');
  });

  test('without the variable nothing is mapped', () => {
    const result = runWith(undefined, LOOKUPS);
    const out = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(out['one']).toBe('ENOTFOUND');
    expect(out['promise']).toBe('ENOTFOUND');
    expect(out['connected']).toBe('ENOTFOUND');
  });

  test('a malformed HTTPMESH_DEMO_HOSTS stops the process at startup instead of resolving wrongly', () => {
    const result = runWith('{not json', 'console.log("ran")');
    expect(result.status).not.toBe(0);
    expect(result.stdout).not.toContain('ran');
    expect(result.stderr).toMatch(/SyntaxError/);
  });
});
