import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';

const root = join(import.meta.dirname, '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

function codeBlockAfter(heading: string, language: string): string {
  const from = readme.indexOf(heading);
  const start = readme.indexOf(`\`\`\`${language}\n`, from);
  if (from === -1 || start === -1) throw new Error(`README has no ${language} block after ${heading}`);
  const body = start + language.length + 4;
  return readme.slice(body, readme.indexOf('```', body));
}

test('the README example is examples/quickstart.mjs and prints what the README shows', () => {
  const example = readFileSync(join(root, 'examples/quickstart.mjs'), 'utf8');
  expect(codeBlockAfter('## Example', 'js')).toBe(example);
  // Imports the package by name, so this runs the built dist exactly as a user would.
  // Colours (FORCE_COLOR under nx) would change what console.log prints.
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env['FORCE_COLOR'];
  const output = execFileSync(process.execPath, [join(root, 'examples/quickstart.mjs')], {
    encoding: 'utf8',
    env,
  });
  expect(output).toBe(codeBlockAfter('Output:', 'text'));
});

test('the README documents exactly the error codes the source can throw', () => {
  const source = readdirSync(join(root, 'src'))
    .map((file) => readFileSync(join(root, 'src', file), 'utf8'))
    .join('\n');
  const codes = (text: string) => [...new Set(text.match(/HTTPMESH_[A-Z_]+/g) ?? [])].sort();
  const table = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('## Design notes'));
  expect(codes(source).length).toBeGreaterThanOrEqual(5);
  expect(codes(table)).toEqual(codes(source));
});
