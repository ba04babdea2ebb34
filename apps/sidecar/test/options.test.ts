import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  ConfigFileError,
  helpText,
  OPTION_SPECS,
  OptionValueError,
  resolveOptions,
  specsFor,
  UnknownFlagError,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-opts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function caught(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error');
}

describe('--help', () => {
  test.each(['run', 'init-net', 'ca'] as const)(
    '%s lists every flag with its env var and YAML key',
    (command) => {
      const text = helpText(command);
      const specs = specsFor(command);
      expect(specs.length).toBeGreaterThan(3);
      for (const s of specs) {
        expect(text).toContain(`--${s.flag}`);
        expect(text).toContain(`env ${s.env}${s.noYaml ? '' : `, yaml ${s.key}`}`);
      }
    },
  );

  test('run documents the issue flags with their defaults', () => {
    const text = helpText('run');
    for (const flag of [
      'mode',
      'listen',
      'outbound-port',
      'inbound-port',
      'admin',
      'ca-dir',
      'control-plane',
      'rules',
      'service',
      'upstream-ca',
      'proxy-uid',
      'config',
      'log-level',
      'access-log',
    ]) {
      expect(text).toContain(`--${flag}`);
    }
    expect(text).toContain('[default: 127.0.0.1:15080]');
    expect(text).toContain('[default: 127.0.0.1:15000]');
    expect(helpText('init-net')).toContain('--dns-upstream');
  });

  test('every env var is HTTPMESH_ + the flag in upper snake case', () => {
    for (const s of OPTION_SPECS) expect(s.env).toBe(`HTTPMESH_${s.flag.toUpperCase().replaceAll('-', '_')}`);
  });
});

describe('precedence: flags > env > config file > defaults', () => {
  const file = configFile(
    'precedence.yaml',
    'outboundPort: 20001\ninboundPort: 20006\nadmin: 127.0.0.1:20000\nlogLevel: warn\n',
  );

  test('defaults: explicit mode on a loopback listener, admin on loopback', () => {
    const { options, sources } = resolveOptions('run', [], {}, dir);
    expect(options.mode).toBe('explicit');
    expect(options.listen).toEqual({ host: '127.0.0.1', port: 15080 });
    expect(options.admin).toEqual({ host: '127.0.0.1', port: 15000 });
    expect(options.outboundPort).toBe(15001);
    expect(options.inboundPort).toBe(15006);
    expect(options.proxyUid).toBe(1337);
    expect(options.accessLog).toBe(false);
    expect(options.caDir).toBe(join(dir, '.httpmesh/ca'));
    expect(sources.outboundPort).toBe('default');
  });

  test('each layer overrides the one below, per option', () => {
    const env = { HTTPMESH_INBOUND_PORT: '30006', HTTPMESH_OUTBOUND_PORT: '30001' };
    const { options, sources } = resolveOptions(
      'run',
      ['--config', file, '--outbound-port', '40001'],
      env,
      dir,
    );
    expect(options.outboundPort).toBe(40001); // flag beats env and file
    expect(sources.outboundPort).toBe('--outbound-port');
    expect(options.inboundPort).toBe(30006); // env beats file
    expect(sources.inboundPort).toBe('HTTPMESH_INBOUND_PORT');
    expect(options.admin).toEqual({ host: '127.0.0.1', port: 20000 }); // file beats default
    expect(sources.admin).toBe(`${file}: admin`);
    expect(options.logLevel).toBe('warn');
    expect(options.listen.port).toBe(15080); // default
  });

  test('HTTPMESH_CONFIG names the config file when no --config is given', () => {
    const { options } = resolveOptions('run', [], { HTTPMESH_CONFIG: file }, dir);
    expect(options.outboundPort).toBe(20001);
  });

  test('lists from flags (comma) and from YAML (sequence); booleans from env', () => {
    const yaml = configFile('lists.yaml', 'controlPlane: [cp1.test:7000, "[::1]:7001"]\naccessLog: true\n');
    const fromFile = resolveOptions('run', ['--config', yaml], {}, dir).options;
    expect(fromFile.controlPlane).toEqual([
      { host: 'cp1.test', port: 7000 },
      { host: '::1', port: 7001 },
    ]);
    expect(fromFile.accessLog).toBe(true);
    const fromFlag = resolveOptions(
      'run',
      ['--control-plane', 'a.test:1,b.test:2'],
      { HTTPMESH_ACCESS_LOG: 'false' },
      dir,
    );
    expect(fromFlag.options.controlPlane.map((h) => h.host)).toEqual(['a.test', 'b.test']);
    expect(fromFlag.options.accessLog).toBe(false);
  });

  test('relative paths in the config file are relative to the file, on the command line to the cwd', () => {
    const yaml = configFile('paths.yaml', 'rules: rules/app.yaml\ncaDir: ./ca\n');
    const { options } = resolveOptions('run', ['--config', yaml, '--upstream-ca', 'roots.pem'], {}, '/srv');
    expect(options.rules).toBe(join(dir, 'rules/app.yaml'));
    expect(options.caDir).toBe(join(dir, 'ca'));
    expect(options.upstreamCa).toBe('/srv/roots.pem');
  });
});

describe('malformed input', () => {
  test('unknown flags and missing values are rejected with HTTPMESH_SIDECAR_FLAG_UNKNOWN', () => {
    for (const argv of [['--bogus'], ['--listen'], ['--dns-upstream', '10.0.0.1'], ['stray']]) {
      const e = caught(() => resolveOptions('run', argv, {}, dir));
      expect(e).toBeInstanceOf(UnknownFlagError);
      expect(e.code).toBe('HTTPMESH_SIDECAR_FLAG_UNKNOWN');
    }
  });

  test.each([
    [['--mode', 'sideways'], 'mode', '--mode'],
    [['--listen', '127.0.0.1'], 'listen', '--listen'],
    [['--listen', 'bad host:80'], 'listen', '--listen'],
    [['--outbound-port', '65536'], 'outboundPort', '--outbound-port'],
    [['--outbound-port', '12ab'], 'outboundPort', '--outbound-port'],
    [['--proxy-uid', '0'], 'proxyUid', '--proxy-uid'],
    [['--control-plane', 'cp:1,cp'], 'controlPlane', '--control-plane'],
    [['--log-level', 'loud'], 'logLevel', '--log-level'],
    [['--young-generation-mb', '1025'], 'youngGenerationMb', '--young-generation-mb'],
    [['--young-generation-mb', '1.5'], 'youngGenerationMb', '--young-generation-mb'],
    [['--young-generation-mb', '8mb'], 'youngGenerationMb', '--young-generation-mb'],
    [['--max-client-connections', '0'], 'maxClientConnections', '--max-client-connections'],
    // `--flag -1` reads as two flags; the value form is how a negative number reaches the option.
    [['--max-client-connections=-1'], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', 'abc'], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', '1.5'], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', '1e3'], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', '0x10'], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', ''], 'maxClientConnections', '--max-client-connections'],
    [['--max-client-connections', '1000000000'], 'maxClientConnections', '--max-client-connections'],
  ])('%j is rejected for %s with its source', (argv, option, source) => {
    const e = caught(() => resolveOptions('run', argv, {}, dir));
    expect(e).toBeInstanceOf(OptionValueError);
    expect(e).toMatchObject({ code: 'HTTPMESH_SIDECAR_OPTION_INVALID', option, source });
  });

  test('--young-generation-mb: 0 (V8 decides) by default; flag, env and YAML set it', () => {
    expect(resolveOptions('run', [], {}, dir).options.youngGenerationMb).toBe(0);
    expect(resolveOptions('run', ['--young-generation-mb', '8'], {}, dir).options.youngGenerationMb).toBe(8);
    const fromEnv = resolveOptions('run', [], { HTTPMESH_YOUNG_GENERATION_MB: '16' }, dir);
    expect(fromEnv.options.youngGenerationMb).toBe(16);
    const file = configFile('young.yaml', 'youngGenerationMb: 4\n');
    expect(resolveOptions('run', ['--config', file], {}, dir).options.youngGenerationMb).toBe(4);
  });

  test('--max-client-connections: unset by default (mitm-core decides); flag, env and YAML set it', () => {
    expect(resolveOptions('run', [], {}, dir).options.maxClientConnections).toBeUndefined();
    const fromFlag = resolveOptions('run', ['--max-client-connections', '2048'], {}, dir);
    expect(fromFlag.options.maxClientConnections).toBe(2048);
    const fromEnv = resolveOptions('run', [], { HTTPMESH_MAX_CLIENT_CONNECTIONS: ' 512 ' }, dir);
    expect(fromEnv.options.maxClientConnections).toBe(512);
    const negative = caught(() => resolveOptions('run', [], { HTTPMESH_MAX_CLIENT_CONNECTIONS: '-1' }, dir));
    expect(negative).toMatchObject({
      code: 'HTTPMESH_SIDECAR_OPTION_INVALID',
      source: 'HTTPMESH_MAX_CLIENT_CONNECTIONS',
    });
    const file = configFile('cap.yaml', 'maxClientConnections: 100\n');
    expect(resolveOptions('run', ['--config', file], {}, dir).options.maxClientConnections).toBe(100);
    expect(helpText('run')).toContain('--max-client-connections N');
    expect(helpText('init-net')).not.toContain('--max-client-connections');
  });

  test.each([
    ['0', 'maxClientConnections: 0\n'],
    ['-1', 'maxClientConnections: -1\n'],
    ['1.5', 'maxClientConnections: 1.5\n'],
    ['a word', 'maxClientConnections: abc\n'],
    ['a list', 'maxClientConnections: [1, 2]\n'],
    ['null', 'maxClientConnections: null\n'],
    ['true', 'maxClientConnections: true\n'],
  ])('maxClientConnections %s in the config file is rejected, naming file and key', (name, text) => {
    const file = configFile(`cap-${name.replace(/\W/g, '')}.yaml`, text);
    const e = caught(() => resolveOptions('run', ['--config', file], {}, dir));
    expect(e).toBeInstanceOf(OptionValueError);
    expect(e).toMatchObject({
      code: 'HTTPMESH_SIDECAR_OPTION_INVALID',
      option: 'maxClientConnections',
      source: `${file}: maxClientConnections`,
    });
  });

  test('a malformed environment value names the variable', () => {
    const e = caught(() => resolveOptions('run', [], { HTTPMESH_ACCESS_LOG: 'maybe' }, dir));
    expect(e).toMatchObject({ code: 'HTTPMESH_SIDECAR_OPTION_INVALID', source: 'HTTPMESH_ACCESS_LOG' });
    const ip = caught(() => resolveOptions('init-net', [], { HTTPMESH_DNS_UPSTREAM: 'dns.example' }, dir));
    expect(ip).toMatchObject({ code: 'HTTPMESH_SIDECAR_OPTION_INVALID', option: 'dnsUpstream' });
  });

  test.each([
    ['not YAML', 'admin: [unclosed\n', /not valid YAML/],
    ['duplicate key', 'admin: 127.0.0.1:1\nadmin: 127.0.0.1:2\n', /not valid YAML/],
    ['a list', '- a\n- b\n', /expected a mapping/],
    ['a scalar', 'just text\n', /expected a mapping/],
    ['an unknown key', 'outboundPrt: 1\n', /unknown key "outboundPrt"/],
    ['a flag-only key', 'config: other.yaml\n', /unknown key "config"/],
  ])('a config file that is %s is rejected with HTTPMESH_SIDECAR_CONFIG_INVALID', (name, text, message) => {
    const file = configFile(`bad-${name.replace(/\W/g, '')}.yaml`, text);
    const e = caught(() => resolveOptions('run', ['--config', file], {}, dir));
    expect(e).toBeInstanceOf(ConfigFileError);
    expect(e.code).toBe('HTTPMESH_SIDECAR_CONFIG_INVALID');
    expect(e.message).toMatch(message);
  });

  test('a missing config file is rejected with HTTPMESH_SIDECAR_CONFIG_INVALID', () => {
    const e = caught(() => resolveOptions('run', ['--config', join(dir, 'absent.yaml')], {}, dir));
    expect(e.code).toBe('HTTPMESH_SIDECAR_CONFIG_INVALID');
  });

  test('a wrongly typed value in the config file names file and key', () => {
    const file = configFile('typed.yaml', 'outboundPort: [1, 2]\n');
    const e = caught(() => resolveOptions('run', ['--config', file], {}, dir));
    expect(e).toMatchObject({ code: 'HTTPMESH_SIDECAR_OPTION_INVALID', source: `${file}: outboundPort` });
  });
});
