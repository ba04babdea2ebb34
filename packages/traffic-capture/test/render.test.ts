import { describe, expect, test } from 'vitest';
import {
  CaptureConfigError,
  checkDnsUpstream,
  InterceptDomainError,
  interceptSuffixes,
  normalizeInterceptDomain,
  parseNameservers,
  RESOLV_MARKER,
  renderDnsmasqConf,
  renderIptablesRestore,
  renderResolvConf,
  resolveCaptureConfig,
} from '../src/index.js';

describe('resolveCaptureConfig', () => {
  test('defaults: outbound 80 always, 443 only via the ipset, proxy uid 1337', () => {
    const c = resolveCaptureConfig();
    expect(c.outboundPort).toBe(15001);
    expect(c.inboundPort).toBe(15006);
    expect(c.proxyUid).toBe(1337);
    expect(c.outboundHttpPorts).toEqual([80]);
    expect(c.outboundTlsPorts).toEqual([443]);
    expect(c.inboundPorts).toEqual([]);
  });

  test('normalises CIDRs and de-duplicates ports', () => {
    const c = resolveCaptureConfig({
      excludeCidrs: ['10.0.0.0/8', '192.168.1.1'],
      outboundHttpPorts: [80, 8080, 80],
    });
    expect(c.excludeCidrs).toEqual(['10.0.0.0/8', '192.168.1.1/32']);
    expect(c.outboundHttpPorts).toEqual([80, 8080]);
  });

  test.each([
    [{ outboundPort: 0 }, 'HTTPMESH_CAPTURE_PORT_INVALID', 'outboundPort'],
    [{ inboundPort: 70000 }, 'HTTPMESH_CAPTURE_PORT_INVALID', 'inboundPort'],
    [{ outboundHttpPorts: [80, 1.5] }, 'HTTPMESH_CAPTURE_PORT_INVALID', 'outboundHttpPorts[1]'],
    [{ inboundPorts: [8080, 15006] }, 'HTTPMESH_CAPTURE_PORT_INVALID', 'inboundPorts[1]'],
    [{ outboundPort: 15006 }, 'HTTPMESH_CAPTURE_PORT_INVALID', 'inboundPort'],
    [{ proxyUid: 0 }, 'HTTPMESH_CAPTURE_UID_INVALID', 'proxyUid'],
    [{ proxyUid: -1 }, 'HTTPMESH_CAPTURE_UID_INVALID', 'proxyUid'],
    [{ excludeCidrs: ['10.0.0.0/33'] }, 'HTTPMESH_CAPTURE_CIDR_INVALID', 'excludeCidrs[0]'],
    [{ excludeCidrs: ['300.1.1.1'] }, 'HTTPMESH_CAPTURE_CIDR_INVALID', 'excludeCidrs[0]'],
    [{ excludeCidrs: ['10.0.0.0/8 -j ACCEPT'] }, 'HTTPMESH_CAPTURE_CIDR_INVALID', 'excludeCidrs[0]'],
    [{ chainPrefix: 'bad prefix' }, 'HTTPMESH_CAPTURE_NAME_INVALID', 'chainPrefix'],
    [{ chainPrefix: 'A_VERY_LONG_PREFIX_X' }, 'HTTPMESH_CAPTURE_NAME_INVALID', 'chainPrefix'],
    [{ ipsetName: 'set\nflush' }, 'HTTPMESH_CAPTURE_NAME_INVALID', 'ipsetName'],
    [{ ipsetTimeoutSeconds: -5 }, 'HTTPMESH_CAPTURE_TIMEOUT_INVALID', 'ipsetTimeoutSeconds'],
    [{ dnsListenAddress: 'localhost' }, 'HTTPMESH_CAPTURE_ADDRESS_INVALID', 'dnsListenAddress'],
  ])('rejects %j with %s', (options, code, field) => {
    let caught: unknown;
    try {
      resolveCaptureConfig(options);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CaptureConfigError);
    expect((caught as CaptureConfigError).code).toBe(code);
    expect((caught as CaptureConfigError).field).toBe(field);
  });

  test('checkDnsUpstream accepts IP and IP#port only', () => {
    expect(checkDnsUpstream('10.0.0.2')).toBe('10.0.0.2');
    expect(checkDnsUpstream('10.0.0.2#5353')).toBe('10.0.0.2#5353');
    for (const bad of [
      'dns.google',
      '10.0.0.2#',
      '10.0.0.2#99999',
      '10.0.0.2#53#1',
      '10.0.0.2\nserver=1.1.1.1',
    ]) {
      expect(() => checkDnsUpstream(bad)).toThrow(
        expect.objectContaining({ code: 'HTTPMESH_CAPTURE_ADDRESS_INVALID' }),
      );
    }
  });
});

describe('intercept domains', () => {
  test('normalises wildcard, case and trailing dot', () => {
    expect(normalizeInterceptDomain('*.Partner.COM.')).toBe('partner.com');
    expect(normalizeInterceptDomain('api.partner.com')).toBe('api.partner.com');
  });

  test('keeps intercept rules only, sorted and de-duplicated', () => {
    expect(
      interceptSuffixes([
        { domain: 'b.example.org' },
        { domain: '*.partner.com', action: 'intercept' },
        { domain: 'partner.com' },
        { domain: 'bank.example', action: 'passthrough' },
      ]),
    ).toEqual(['b.example.org', 'partner.com']);
  });

  test.each([
    ['', 'empty'],
    ['partner.com/evil', 'slash would inject a dnsmasq option'],
    ['partner.com\nserver=6.6.6.6', 'newline injection'],
    ['part ner.com', 'space'],
    ['*.*.partner.com', 'double wildcard'],
    ['partner*.com', 'inner wildcard'],
    ['-bad.com', 'label starts with hyphen'],
    [`${'a'.repeat(64)}.com`, 'label too long'],
    ['10.1.2.3', 'an IP literal'],
    ['com', 'single label'],
    ['*.com', 'a whole TLD'],
    ['a..com', 'empty label'],
  ])('rejects %j (%s) with HTTPMESH_CAPTURE_DOMAIN_INVALID', (domain) => {
    expect(() => normalizeInterceptDomain(domain)).toThrow(InterceptDomainError);
    expect(() => interceptSuffixes([{ domain: 'ok.com' }, { domain }])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_CAPTURE_DOMAIN_INVALID', index: 1 }),
    );
  });

  test('rejects non-string domains, non-object rules and unknown actions with their index', () => {
    const bad: unknown[] = [{ domain: 42 }, null, { domain: 'a.com', action: 'drop' }];
    for (const rule of bad) {
      expect(() => interceptSuffixes([rule as { domain: string }])).toThrow(
        expect.objectContaining({ code: 'HTTPMESH_CAPTURE_DOMAIN_INVALID', index: 0 }),
      );
    }
  });
});

describe('renderIptablesRestore', () => {
  const config = resolveCaptureConfig({ inboundPorts: [8080], excludeCidrs: ['169.254.169.254'] });

  test('defines our chains, exempts the proxy uid and loopback before redirecting', () => {
    const text = renderIptablesRestore(config);
    expect(text.split('\n')).toEqual([
      '*nat',
      ':HTTPMESH_OUTPUT - [0:0]',
      ':HTTPMESH_PREROUTING - [0:0]',
      '-A HTTPMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A HTTPMESH_OUTPUT -o lo -j RETURN',
      '-A HTTPMESH_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A HTTPMESH_OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 15001',
      '-A HTTPMESH_OUTPUT -p tcp -m tcp --dport 443 -m set --match-set httpmesh-intercept dst -j REDIRECT --to-ports 15001',
      '-A HTTPMESH_PREROUTING -i lo -j RETURN',
      '-A HTTPMESH_PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15006',
      '-I OUTPUT -p tcp -j HTTPMESH_OUTPUT',
      '-I PREROUTING -p tcp -j HTTPMESH_PREROUTING',
      'COMMIT',
      '',
    ]);
  });

  test('leaves out jumps that are already present, so re-applying adds none', () => {
    const text = renderIptablesRestore(config, { addOutputJump: false, addPreroutingJump: false });
    expect(text).not.toMatch(/^-I /m);
    expect(renderIptablesRestore(config, { addOutputJump: false })).toMatch(/^-I PREROUTING /m);
  });

  test('uses the configured prefix, set, ports and uid', () => {
    const c = resolveCaptureConfig({
      chainPrefix: 'MESH2',
      ipsetName: 'mesh2-set',
      proxyUid: 2000,
      outboundPort: 18001,
      outboundHttpPorts: [80, 8080],
      outboundTlsPorts: [443, 8443],
    });
    const text = renderIptablesRestore(c);
    expect(text).toContain('-A MESH2_OUTPUT -m owner --uid-owner 2000 -j RETURN');
    expect(text).toContain('-A MESH2_OUTPUT -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 18001');
    expect(text).toContain('--dport 8443 -m set --match-set mesh2-set dst -j REDIRECT --to-ports 18001');
    expect(text).not.toContain('HTTPMESH');
  });
});

describe('renderDnsmasqConf', () => {
  const config = resolveCaptureConfig();

  test('forward-only resolver that fills the ipset for the intercepted suffixes', () => {
    const text = renderDnsmasqConf(config, {
      upstream: '10.0.0.2',
      suffixes: ['partner.com', 'x.example.org'],
      pidFile: '/run/x/dnsmasq.pid',
    });
    const lines = text.split('\n');
    expect(lines).toContain('listen-address=127.0.0.1');
    expect(lines).toContain('port=53');
    expect(lines).toContain('no-resolv');
    expect(lines).toContain('server=10.0.0.2');
    expect(lines).toContain('pid-file=/run/x/dnsmasq.pid');
    expect(lines).toContain('ipset=/partner.com/x.example.org/httpmesh-intercept');
  });

  test('no ipset line without intercepted domains', () => {
    const text = renderDnsmasqConf(config, { upstream: '10.0.0.2', suffixes: [], pidFile: '/p' });
    expect(text).not.toContain('ipset=');
  });
});

describe('resolv.conf', () => {
  test('parses IPv4 nameservers, ignoring comments and IPv6', () => {
    expect(
      parseNameservers('# c\nnameserver 10.0.0.2\nnameserver ::1\n nameserver 8.8.8.8 \nsearch x\n'),
    ).toEqual(['10.0.0.2', '8.8.8.8']);
    expect(parseNameservers('garbage\x00\nnameserver\nnameserver not-an-ip')).toEqual([]);
  });

  test('points at dnsmasq, keeps search and options, carries the marker', () => {
    const text = renderResolvConf(
      resolveCaptureConfig(),
      'nameserver 10.0.0.2\nsearch svc.local\noptions ndots:5\n',
    );
    expect(text).toBe(`${RESOLV_MARKER}\nnameserver 127.0.0.1\nsearch svc.local\noptions ndots:5\n`);
  });
});
