/**
 * The intercept file `run` publishes and `init-net --follow` applies: atomic writes, validation of every
 * malformed shape, and the follower (real fs.watch on a temporary directory).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  followInterceptFile,
  type InterceptFileContent,
  parseInterceptFile,
  readInterceptFile,
  writeInterceptFile,
} from '../src/intercept-file.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-intercept-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rule = (domain: string, action: 'intercept' | 'passthrough' = 'intercept') => ({
  name: domain,
  domain,
  action,
  upstreamTlsVerify: true,
});

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('intercept file', () => {
  test('is written atomically (no temporary left) and read back with defaults filled in', async () => {
    const path = join(dir, 'sub', 'intercept.json');
    await writeInterceptFile(path, { version: 'v1', intercept: [rule('*.partner.test')] });
    expect(readdirSync(join(dir, 'sub'))).toEqual(['intercept.json']);
    const read = await readInterceptFile(path);
    expect(read).toEqual({ version: 'v1', intercept: [rule('*.partner.test')] });
    expect(await readInterceptFile(join(dir, 'missing.json'))).toBeNull();
  });

  test.each([
    ['not JSON', '{"version": ', /not JSON/],
    ['a list', '[]', /expected an object/],
    ['no version', '{"intercept": []}', /version: expected/],
    ['an unknown field', '{"version": "1", "intercept": [], "extra": 1}', /unknown field extra/],
    ['a bad domain', '{"version": "1", "intercept": [{"domain": "a/b"}]}', /intercept\[0\]\.domain/],
    [
      'a bad action',
      '{"version": "1", "intercept": [{"domain": "x.test", "action": "drop"}]}',
      /intercept\[0\]\.action/,
    ],
    ['intercept not a list', '{"version": "1", "intercept": {}}', /intercept/],
    ['writtenAt not a string', '{"version": "1", "intercept": [], "writtenAt": 3}', /writtenAt/],
  ])('rejects %s with HTTPMESH_SIDECAR_INTERCEPT_FILE_INVALID', (_what, text, message) => {
    let error: unknown;
    try {
      parseInterceptFile(text, '/x/intercept.json');
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: 'HTTPMESH_SIDECAR_INTERCEPT_FILE_INVALID',
      path: '/x/intercept.json',
    });
    expect((error as Error).message).toMatch(message);
  });

  test('the follower applies each new version in order, reports a malformed one and retries a failed apply', async () => {
    const path = join(dir, 'follow', 'intercept.json');
    await writeInterceptFile(path, { version: 'v1', intercept: [rule('*.a.test')] });
    const applied: InterceptFileContent[] = [];
    const errors: Error[] = [];
    let failNext = false;
    const follower = followInterceptFile(
      path,
      'v1', // already applied by the caller's install
      async (content) => {
        if (failNext) {
          failNext = false;
          throw new Error('dnsmasq did not start');
        }
        applied.push(content);
      },
      (e) => errors.push(e),
      10,
    );
    try {
      await writeInterceptFile(path, { version: 'v2', intercept: [rule('*.a.test'), rule('*.b.test')] });
      await until(() => applied.length === 1);
      expect(applied[0]?.intercept.map((r) => r.domain)).toEqual(['*.a.test', '*.b.test']);

      writeFileSync(path, '{"version": "v3", "intercept": [{"domain": "not a domain"}]}');
      await until(() => errors.length === 1);
      expect(errors[0]).toMatchObject({ code: 'HTTPMESH_SIDECAR_INTERCEPT_FILE_INVALID' });

      failNext = true;
      await writeInterceptFile(path, { version: 'v4', intercept: [rule('*.c.test')] });
      await until(() => errors.length === 2);
      expect(applied).toHaveLength(1);
      // The same version written again (the proxy republishes on its next change) is retried.
      await writeInterceptFile(path, { version: 'v4', intercept: [rule('*.c.test')] });
      await until(() => applied.length === 2);
      expect(applied[1]?.version).toBe('v4');
    } finally {
      follower.close();
    }
  });
});
