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

test('transparent decision: plain HTTP always; TLS by SNI; TLS without SNI only when a rule covers the destination', () => {
  const policy = new InterceptPolicy(
    parseRules(
      `intercept:\n  - domain: '*.partner.com'\n  - domain: 10.0.0.7\n`,
      'rules.yaml',
      // IP rules only validate with local names (explicit mode); the decision itself is what is tested.
      { localNames: true },
    ).intercept,
  );
  const to = (address: string) => ({ address, port: 443, family: 4 as const });
  // Plain HTTP to any IP is parsed and measured.
  expect(
    policy.decideTransparent('10.9.9.9', {
      tls: false,
      serverName: undefined,
      originalDestination: to('10.9.9.9'),
    }),
  ).toBe(true);
  // TLS with SNI follows the rules by name, whatever the destination.
  expect(
    policy.decideTransparent('api.partner.com', {
      tls: true,
      serverName: 'api.partner.com',
      originalDestination: to('10.9.9.9'),
    }),
  ).toBe(true);
  expect(
    policy.decideTransparent('www.other.com', {
      tls: true,
      serverName: 'www.other.com',
      originalDestination: to('10.0.0.7'),
    }),
  ).toBe(false);
  // No SNI: only the original destination can decide.
  expect(
    policy.decideTransparent('10.9.9.9', {
      tls: true,
      serverName: undefined,
      originalDestination: to('10.9.9.9'),
    }),
  ).toBe(false);
  expect(
    policy.decideTransparent('10.0.0.7', {
      tls: true,
      serverName: undefined,
      originalDestination: to('10.0.0.7'),
    }),
  ).toBe(true);
  // No addon (no original destination): the host mitm-core asks with stands in.
  expect(
    policy.decideTransparent('10.0.0.7', { tls: true, serverName: undefined, originalDestination: null }),
  ).toBe(true);
  expect(
    policy.decideTransparent('10.9.9.9', { tls: true, serverName: undefined, originalDestination: null }),
  ).toBe(false);
});

test('upstream verification opt-out is known per policy', () => {
  expect(new InterceptPolicy(rules).hasInsecureUpstream).toBe(false);
  const optOut = parseRules(
    `intercept:\n  - domain: a.example.com\n    upstreamTlsVerify: false\n`,
  ).intercept;
  expect(new InterceptPolicy(optOut).hasInsecureUpstream).toBe(true);
  const passthrough = parseRules(
    `intercept:\n  - domain: a.example.com\n    action: passthrough\n    upstreamTlsVerify: false\n`,
  ).intercept;
  expect(new InterceptPolicy(passthrough).hasInsecureUpstream).toBe(false);
});
