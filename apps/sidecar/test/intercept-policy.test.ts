import { expect, test } from 'vitest';
import { InterceptPolicy } from '../src/intercept-policy.js';
import { parseRules } from '../src/index.js';

const rules = parseRules(`
intercept:
  - domain: '*.partner.com'
  - domain: pay.partner.com
    action: passthrough
  - domain: API.Example.org
`).intercept;

test('wildcards cover one more label; exact rules win over wildcards; unlisted hosts pass through', () => {
  const policy = new InterceptPolicy(rules);
  expect(policy.intercepts('api.partner.com')).toBe(true);
  expect(policy.intercepts('API.partner.com')).toBe(true);
  expect(policy.intercepts('pay.partner.com')).toBe(false);
  expect(policy.intercepts('partner.com')).toBe(false);
  expect(policy.intercepts('a.b.partner.com')).toBe(false);
  expect(policy.intercepts('api.example.org')).toBe(true);
  expect(policy.intercepts('www.example.org')).toBe(false);
  expect(policy.intercepts('localhost')).toBe(false);
  expect(policy.ruleFor('pay.partner.com')?.action).toBe('passthrough');
});
