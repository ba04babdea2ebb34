import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { ConfigFileError, OptionValueError, UnknownFlagError } from './errors.js';

export type CommandName = 'run' | 'init-net' | 'ca';

/** A `host:port` pair. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Every option of every command, after precedence (flags > env > config file > defaults) is applied. */
export interface SidecarOptions {
  mode: 'transparent' | 'explicit';
  listen: HostPort;
  outboundPort: number;
  inboundPort: number;
  admin: HostPort;
  caDir: string;
  controlPlane: HostPort[];
  rules: string | undefined;
  service: string | undefined;
  upstreamCa: string | undefined;
  proxyUid: number;
  dnsUpstream: string | undefined;
  config: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  accessLog: boolean;
  drainTimeout: number;
  metricsInterval: number;
  youngGenerationMb: number;
  /** Per proxy (outbound, and inbound in transparent mode); undefined: mitm-core's default. */
  maxClientConnections: number | undefined;
  inboundPorts: number[];
  outboundHttpPorts: number[];
  outboundTlsPorts: number[];
  excludeCidrs: string[];
  netns: string | undefined;
  stateDir: string | undefined;
  remove: boolean;
  trust: string[];
  controlPlaneCa: string | undefined;
  nodeCert: string | undefined;
  nodeKey: string | undefined;
  nodeId: string | undefined;
  rulesCache: string;
  trustEnvFile: string | undefined;
  javaTruststore: string | undefined;
  interceptFile: string;
  follow: boolean;
  controlPlaneApi: string | undefined;
  controlPlaneToken: string | undefined;
  controlSocket: string;
  upgradeFrom: string | undefined;
}

export type OptionKey = keyof SidecarOptions;
type Kind =
  | 'string'
  | 'path'
  | 'port'
  | 'hostport'
  | 'hostports'
  | 'uid'
  | 'ip'
  | 'enum'
  | 'bool'
  | 'ports'
  | 'list'
  | 'url'
  | 'ms'
  | 'mb'
  | 'count';

export interface OptionSpec {
  readonly key: OptionKey;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly commands: readonly CommandName[];
  readonly description: string;
  readonly default?: SidecarOptions[OptionKey];
  readonly choices?: readonly string[];
  /** Flag/env only (not read from the config file). */
  readonly noYaml?: boolean;
  readonly placeholder?: string;
}

const ALL: readonly CommandName[] = ['run', 'init-net', 'ca'];
const NET: readonly CommandName[] = ['run', 'init-net'];

function spec(
  key: OptionKey,
  flag: string,
  kind: Kind,
  commands: readonly CommandName[],
  description: string,
  extra: Partial<Pick<OptionSpec, 'default' | 'choices' | 'noYaml' | 'placeholder'>> = {},
): OptionSpec {
  const env = `HTTPMESH_${flag.replace(/-/g, '_').toUpperCase()}`;
  return { key, flag, env, kind, commands, description, ...extra };
}

/** The option table: one source of truth for parsing, environment names, YAML keys and `--help`. */
export const OPTION_SPECS: readonly OptionSpec[] = [
  spec('config', 'config', 'path', ALL, 'YAML config file; its keys are the YAML names below', {
    noYaml: true,
    placeholder: 'FILE',
  }),
  spec(
    'mode',
    'mode',
    'enum',
    ['run'],
    'transparent (after init-net) or explicit forward proxy on --listen',
    {
      default: 'explicit',
      choices: ['transparent', 'explicit'],
    },
  ),
  spec('listen', 'listen', 'hostport', ['run'], 'explicit mode: forward proxy address (HTTP and CONNECT)', {
    default: { host: '127.0.0.1', port: 15080 },
    placeholder: 'HOST:PORT',
  }),
  spec(
    'outboundPort',
    'outbound-port',
    'port',
    NET,
    'transparent mode: port redirected outbound traffic arrives on',
    {
      default: 15001,
      placeholder: 'PORT',
    },
  ),
  spec(
    'inboundPort',
    'inbound-port',
    'port',
    NET,
    'transparent mode: port redirected inbound traffic arrives on',
    {
      default: 15006,
      placeholder: 'PORT',
    },
  ),
  spec(
    'admin',
    'admin',
    'hostport',
    ['run'],
    'admin endpoint (/healthz /readyz /metrics /config /connections)',
    {
      default: { host: '127.0.0.1', port: 15000 },
      placeholder: 'HOST:PORT',
    },
  ),
  spec('caDir', 'ca-dir', 'path', ['run', 'ca'], 'directory of the mesh CA (ca.crt, ca.key)', {
    default: '.httpmesh/ca',
    placeholder: 'DIR',
  }),
  spec('controlPlane', 'control-plane', 'hostports', ['run', 'ca'], 'control plane(s), tried in order', {
    default: [],
    placeholder: 'HOST:PORT[,HOST:PORT]',
  }),
  spec('controlPlaneCa', 'control-plane-ca', 'path', ['run'], 'CA of the control plane certificate (mTLS)', {
    placeholder: 'FILE',
  }),
  spec('nodeCert', 'node-cert', 'path', ['run'], "this sidecar's client certificate for the control plane", {
    placeholder: 'FILE',
  }),
  spec('nodeKey', 'node-key', 'path', ['run'], "this sidecar's client key for the control plane", {
    placeholder: 'FILE',
  }),
  spec(
    'nodeId',
    'node-id',
    'string',
    ['run', 'ca'],
    'node id sent to the control plane (default SERVICE-PID)',
    {
      placeholder: 'ID',
    },
  ),
  spec('rulesCache', 'rules-cache', 'path', ['run'], 'last good control-plane rules, reloaded at start', {
    default: '.httpmesh/rules-last-good.bin',
    placeholder: 'FILE',
  }),
  spec(
    'rules',
    'rules',
    'path',
    ALL,
    'rules file (YAML): run watches it; init-net and ca init use its intercept domains',
    {
      placeholder: 'FILE',
    },
  ),
  spec('service', 'service', 'string', ['run'], 'name of the service this sidecar serves', {
    placeholder: 'NAME',
  }),
  spec(
    'upstreamCa',
    'upstream-ca',
    'path',
    ['run'],
    'extra PEM roots for upstream TLS, beside the system store',
    {
      placeholder: 'FILE',
    },
  ),
  spec('proxyUid', 'proxy-uid', 'uid', NET, 'uid the sidecar runs as; its traffic is never redirected', {
    default: 1337,
    placeholder: 'UID',
  }),
  spec(
    'dnsUpstream',
    'dns-upstream',
    'ip',
    ['init-net'],
    "resolver dnsmasq forwards to (default: the namespace's)",
    {
      placeholder: 'IP',
    },
  ),
  spec(
    'inboundPorts',
    'inbound-ports',
    'ports',
    ['init-net'],
    'service ports whose inbound traffic is captured',
    {
      default: [],
      placeholder: 'PORT[,PORT]',
    },
  ),
  spec(
    'outboundHttpPorts',
    'outbound-http-ports',
    'ports',
    ['init-net'],
    'outbound ports captured for every destination',
    {
      default: [80],
      placeholder: 'PORT[,PORT]',
    },
  ),
  spec(
    'outboundTlsPorts',
    'outbound-tls-ports',
    'ports',
    ['init-net'],
    'outbound ports captured for intercepted domains only',
    {
      default: [443],
      placeholder: 'PORT[,PORT]',
    },
  ),
  spec('excludeCidrs', 'exclude-cidrs', 'list', ['init-net'], 'outbound destinations never captured', {
    default: [],
    placeholder: 'CIDR[,CIDR]',
  }),
  spec(
    'netns',
    'netns',
    'string',
    ['init-net'],
    'apply to this named namespace (ip netns) instead of the current one',
    {
      placeholder: 'NAME',
    },
  ),
  spec('stateDir', 'state-dir', 'path', NET, 'where dnsmasq files and the resolv.conf backup live', {
    placeholder: 'DIR',
  }),
  spec('remove', 'remove', 'bool', ['init-net'], 'remove the interception instead of installing it', {
    default: false,
    noYaml: true,
  }),
  spec('trust', 'trust', 'list', ['ca'], 'ca trust: stores to install into (system, java, env)', {
    default: ['system', 'java', 'env'],
    placeholder: 'STORE[,STORE]',
  }),
  spec(
    'trustEnvFile',
    'trust-env-file',
    'path',
    ['ca'],
    'ca trust: env file to write (default CA_DIR/trust.env)',
    {
      placeholder: 'FILE',
    },
  ),
  spec(
    'javaTruststore',
    'java-truststore',
    'path',
    ['ca'],
    "ca trust: keystore keytool writes instead of the JDK's cacerts (a missing one starts as its copy)",
    { placeholder: 'FILE' },
  ),
  spec(
    'interceptFile',
    'intercept-file',
    'path',
    NET,
    'effective intercept rules: run (transparent) writes it, init-net --follow applies it',
    { default: '/run/httpmesh/sidecar/intercept.json', placeholder: 'FILE' },
  ),
  spec(
    'follow',
    'follow',
    'bool',
    ['init-net'],
    'after installing, keep running and apply --intercept-file changes to dnsmasq/ipset',
    { default: false, noYaml: true },
  ),
  spec(
    'controlPlaneApi',
    'control-plane-api',
    'url',
    ['ca'],
    "ca init: control plane HTTP API; fetch an intermediate constrained to the rules' intercept domains",
    { placeholder: 'URL' },
  ),
  spec(
    'controlPlaneToken',
    'control-plane-token',
    'string',
    ['ca'],
    'ca init: admin token of the control plane API (prefer the env var: argv is visible to others)',
    { placeholder: 'TOKEN' },
  ),
  spec(
    'controlSocket',
    'control-socket',
    'path',
    ['run'],
    'Unix socket (0600) on which run accepts an upgrade to a new process (see --upgrade-from)',
    { default: '/run/httpmesh/sidecar/control.sock', placeholder: 'FILE' },
  ),
  spec(
    'upgradeFrom',
    'upgrade-from',
    'path',
    ['run'],
    'take over the listening sockets of the sidecar serving on this control socket; it drains and exits',
    { noYaml: true, placeholder: 'SOCKET' },
  ),
  spec('logLevel', 'log-level', 'enum', ALL, 'log level', {
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  }),
  spec('accessLog', 'access-log', 'bool', ['run'], 'log one line per exchange', { default: false }),
  spec(
    'drainTimeout',
    'drain-timeout',
    'ms',
    ['run'],
    'on SIGTERM, how long in-flight requests may finish (ms)',
    {
      default: 10_000,
      placeholder: 'MS',
    },
  ),
  spec(
    'metricsInterval',
    'metrics-interval',
    'ms',
    ['run'],
    'with --control-plane: upload a metric snapshot this often (ms, at least 100); one more on shutdown',
    { default: 10_000, placeholder: 'MS' },
  ),
  spec(
    'youngGenerationMb',
    'young-generation-mb',
    'mb',
    ['run'],
    "cap V8's young generation at this many MB (0: V8's own growth, up to 32); 8 trades resident memory under load for CPU (README, Memory)",
    { default: 0, placeholder: 'MB' },
  ),
  spec(
    'maxClientConnections',
    'max-client-connections',
    'count',
    ['run'],
    'client connections each proxy listener holds at once; more are closed unread and logged (default: from the open-files limit, at most 8192)',
    { placeholder: 'N' },
  ),
];

export function specsFor(command: CommandName): OptionSpec[] {
  return OPTION_SPECS.filter((s) => s.commands.includes(command));
}

const HOST_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function parseHostPort(text: string, fail: (m: string) => never): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  // Port 0 asks for any free port (tests, ad-hoc runs); the address is logged at start.
  if (!m || host === undefined || !(isIP(host) || HOST_RE.test(host)) || port > 65535) {
    fail(`expected HOST:PORT, got ${JSON.stringify(text)}`);
  }
  return { host, port };
}

function asText(value: unknown, fail: (m: string) => never): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return fail(`expected a scalar, got ${Array.isArray(value) ? 'a list' : typeof value}`);
}

/** Items of a comma list (flag/env) or a YAML sequence. */
function asList(value: unknown, fail: (m: string) => never): string[] {
  if (Array.isArray(value)) return value.map((v) => asText(v, fail).trim());
  return asText(value, fail)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function parsePort(text: string, fail: (m: string) => never): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535)
    fail(`expected a port 1-65535, got ${JSON.stringify(text)}`);
  return n;
}

/** Converts one raw value (string from argv/env, any YAML value) to the option's type. */
export function parseOptionValue(
  s: OptionSpec,
  raw: unknown,
  source: string,
  baseDir: string,
): SidecarOptions[OptionKey] {
  const fail = (message: string): never => {
    throw new OptionValueError(s.key, source, message);
  };
  switch (s.kind) {
    case 'string': {
      const v = asText(raw, fail).trim();
      if (v.length === 0) fail('must not be empty');
      return v;
    }
    case 'path': {
      const v = asText(raw, fail).trim();
      if (v.length === 0) fail('must not be empty');
      return resolve(baseDir, v);
    }
    case 'port':
      return parsePort(asText(raw, fail).trim(), fail);
    case 'mb': {
      const v = asText(raw, fail).trim();
      if (!/^\d{1,4}$/.test(v) || Number(v) > 1024)
        fail(`expected megabytes 0-1024, got ${JSON.stringify(v)}`);
      return Number(v);
    }
    case 'count': {
      const v = asText(raw, fail).trim();
      if (!/^[1-9]\d{0,8}$/.test(v)) fail(`expected a whole number from 1, got ${JSON.stringify(v)}`);
      return Number(v);
    }
    case 'ms': {
      const v = asText(raw, fail).trim();
      if (!/^\d{1,9}$/.test(v)) fail(`expected milliseconds, got ${JSON.stringify(v)}`);
      return Number(v);
    }
    case 'uid': {
      const v = asText(raw, fail).trim();
      if (!/^\d{1,10}$/.test(v) || Number(v) === 0 || Number(v) > 0xfffffffe) {
        fail(`expected a non-root numeric uid, got ${JSON.stringify(v)}`);
      }
      return Number(v);
    }
    case 'ip': {
      const v = asText(raw, fail).trim();
      if (isIP(v) !== 4) fail(`expected an IPv4 address, got ${JSON.stringify(v)}`);
      return v;
    }
    case 'enum': {
      const v = asText(raw, fail).trim();
      if (!s.choices?.includes(v)) fail(`expected one of ${s.choices?.join('|')}, got ${JSON.stringify(v)}`);
      return v as SidecarOptions['mode'];
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const v = asText(raw, fail).trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      return fail(`expected true or false, got ${JSON.stringify(v)}`);
    }
    case 'hostport':
      return parseHostPort(asText(raw, fail), fail);
    case 'hostports':
      return asList(raw, fail).map((item) => parseHostPort(item, fail));
    case 'ports':
      return asList(raw, fail).map((item) => parsePort(item, fail));
    case 'list':
      return asList(raw, fail);
    case 'url': {
      const v = asText(raw, fail).trim();
      let url: URL | undefined;
      try {
        url = new URL(v);
      } catch {
        // reported below
      }
      if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '') {
        fail(`expected an http(s) URL without query, got ${JSON.stringify(v)}`);
      }
      return v.replace(/\/+$/, '');
    }
  }
}

export interface ResolvedOptions {
  readonly options: SidecarOptions;
  /** Where each option's value came from: `--flag`, `HTTPMESH_X`, `FILE: key` or `default`. */
  readonly sources: Readonly<Record<OptionKey, string>>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

/** Reads a YAML config file: a mapping whose keys are option YAML names valid for the command. */
export function readConfigFile(path: string, command: CommandName): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigFileError(path, `cannot read: ${(e as Error).message}`);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigFileError(path, `not valid YAML: ${doc.errors[0]?.message ?? 'parse error'}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigFileError(path, 'expected a mapping of option names to values');
  }
  const known = new Map(OPTION_SPECS.filter((s) => !s.noYaml).map((s) => [s.key as string, s]));
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new ConfigFileError(
        path,
        `unknown key ${JSON.stringify(key)} (known: ${[...known.keys()].join(', ')})`,
      );
    }
  }
  // Keys for other commands are allowed (one file serves run, init-net and ca) but only ours are used.
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (known.get(key)?.commands.includes(command)) out[key] = v;
  }
  return out;
}

/**
 * Applies precedence flags > environment (HTTPMESH_*) > YAML config file > defaults for one command.
 * Unknown flags and malformed values throw; relative paths in the config file are relative to it.
 */
export function resolveOptions(
  command: CommandName,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): ResolvedOptions {
  const specs = specsFor(command);
  const parseSpec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const s of specs) parseSpec[s.flag] = { type: s.kind === 'bool' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: parseSpec,
      strict: true,
      allowPositionals: command === 'ca',
    });
  } catch (e) {
    const err = e as Error;
    throw new UnknownFlagError(`${command}: ${err.message.split('\n')[0] ?? err.message} (see --help)`);
  }
  const flagValues = parsed.values as Record<string, string | boolean | undefined>;
  const options: Record<string, unknown> = {};
  const sources: Record<string, string> = {};

  const configSpec = specs.find((s) => s.key === 'config');
  let configPath: string | undefined;
  const configFlag = flagValues['config'];
  if (typeof configFlag === 'string' && configSpec) {
    configPath = parseOptionValue(configSpec, configFlag, '--config', cwd) as string;
  } else if (env['HTTPMESH_CONFIG'] !== undefined && configSpec) {
    configPath = parseOptionValue(configSpec, env['HTTPMESH_CONFIG'], 'HTTPMESH_CONFIG', cwd) as string;
  }
  const fileValues = configPath === undefined ? {} : readConfigFile(configPath, command);

  for (const s of specs) {
    const flagValue = flagValues[s.flag];
    if (flagValue !== undefined) {
      options[s.key] = parseOptionValue(s, flagValue, `--${s.flag}`, cwd);
      sources[s.key] = `--${s.flag}`;
    } else if (env[s.env] !== undefined && env[s.env] !== '') {
      options[s.key] = parseOptionValue(s, env[s.env], s.env, cwd);
      sources[s.key] = s.env;
    } else if (configPath !== undefined && s.key in fileValues) {
      options[s.key] = parseOptionValue(s, fileValues[s.key], `${configPath}: ${s.key}`, dirname(configPath));
      sources[s.key] = `${configPath}: ${s.key}`;
    } else {
      options[s.key] =
        s.kind === 'path' && typeof s.default === 'string' ? resolve(cwd, s.default) : s.default;
      sources[s.key] = 'default';
    }
  }
  return {
    options: options as unknown as SidecarOptions,
    sources: sources as Record<OptionKey, string>,
    positionals: parsed.positionals,
    help: flagValues['help'] === true,
  };
}

function formatDefault(s: OptionSpec): string {
  const d = s.default;
  if (d === undefined) return '';
  if (Array.isArray(d)) {
    if (d.length === 0) return '';
    return ` [default: ${d.map((x) => (typeof x === 'object' ? `${x.host}:${x.port}` : String(x))).join(',')}]`;
  }
  if (typeof d === 'object') return ` [default: ${d.host}:${d.port}]`;
  return ` [default: ${String(d)}]`;
}

const USAGE: Record<CommandName, string> = {
  run: 'httpmesh-sidecar run [flags]\n  Run the proxy (explicit or transparent mode) and its admin endpoint.',
  'init-net':
    'httpmesh-sidecar init-net [--remove] [flags]\n  Install (or remove) transparent capture in the current network namespace (root).',
  ca: 'httpmesh-sidecar ca init|show|trust [flags]\n  Create or load the mesh CA, print its certificate, or install trust for it.',
};

/** `--help` text of a command: every flag with its environment variable and YAML key. */
export function helpText(command: CommandName): string {
  const lines = [USAGE[command], '', 'Flags (precedence: flag > environment > config file > default):'];
  for (const s of specsFor(command)) {
    const value = s.kind === 'bool' ? '' : ` ${s.placeholder ?? (s.choices ? s.choices.join('|') : 'VALUE')}`;
    lines.push(`  --${s.flag}${value}`);
    lines.push(`      ${s.description}${formatDefault(s)}`);
    lines.push(`      env ${s.env}${s.noYaml ? '' : `, yaml ${s.key}`}`);
  }
  lines.push('  -h, --help', '      show this help', '');
  return lines.join('\n');
}

export const TOP_HELP = [
  "httpmesh-sidecar: captures and measures a service's HTTP(S) traffic without code changes.",
  '',
  'Usage: httpmesh-sidecar <command> [flags]',
  '',
  'Commands:',
  '  run                   run the proxy and the admin endpoint',
  '  init-net [--remove]   install or remove iptables/ipset/dnsmasq capture in this network namespace',
  '  ca init|show|trust    create/load the mesh CA, print it, install trust for it',
  '',
  'Run `httpmesh-sidecar <command> --help` for its flags.',
  '',
].join('\n');
