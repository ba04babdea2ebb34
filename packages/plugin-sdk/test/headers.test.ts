import { describe, expect, test } from 'vitest';
import {
  applyHeaderMutation,
  headerListFromRecord,
  headerListToRecord,
  isValidHeaderName,
  isValidHeaderValue,
} from '../src/index.js';

describe('header helpers', () => {
  test('record -> list -> record keeps repeated fields and drops undefined', () => {
    const record = {
      Accept: 'text/html',
      'set-cookie': ['a=1', 'b=2'],
      'content-length': 12,
      gone: undefined,
    };
    const list = headerListFromRecord(record);
    expect(list).toEqual([
      ['accept', 'text/html'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-length', '12'],
    ]);
    expect(headerListToRecord(list)).toEqual({
      accept: 'text/html',
      'set-cookie': ['a=1', 'b=2'],
      'content-length': '12',
    });
  });

  test('applyHeaderMutation removes, then sets (replacing every value), then appends', () => {
    const base = [
      ['x-a', '1'],
      ['X-B', '2'],
      ['x-a', '3'],
      ['x-c', '4'],
    ] as const;
    expect(
      applyHeaderMutation(base, { set: [['x-a', 'new']], append: [['x-c', '5']], remove: ['x-b'] }),
    ).toEqual([
      ['x-c', '4'],
      ['x-a', 'new'],
      ['x-c', '5'],
    ]);
  });

  test('header name and value validation', () => {
    for (const good of ['x-a', 'content-type', "x!#$%&'*+-.^_`|~0"])
      expect(isValidHeaderName(good)).toBe(true);
    for (const bad of ['', 'x a', 'x:a', 'x\r', 'x\n', 'x\0', 'é', '(x)'])
      expect(isValidHeaderName(bad)).toBe(false);
    for (const good of ['', 'a b', 'tab\there', 'latin1 \u00e9']) expect(isValidHeaderValue(good)).toBe(true);
    for (const bad of ['a\rb', 'a\nb', 'a\0b', 'snow \u2603']) expect(isValidHeaderValue(bad)).toBe(false);
  });
});
