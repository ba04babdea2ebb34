import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';

export interface ServeConfig {
  grpc: string;
  http: string;
  dataDir: string;
  store: 'sqlite' | 'etcd';
  etcdEndpoints: string[];
  etcdPrefix: string;
  caDir: string | undefined;
  adminToken: string | undefined;
  protectReads: boolean;
  alertWebhook: string | undefined;
  dashboardDir: string | undefined;
}

export const DEFAULTS: ServeConfig = {
  grpc: '127.0.0.1:15010',
  http: '127.0.0.1:8080',
  dataDir: './.httpmesh/control-plane',
  store: 'sqlite',
  etcdEndpoints: ['http://127.0.0.1:2379'],
  etcdPrefix: '/httpmesh',
  caDir: undefined,
  adminToken: undefined,
  protectReads: false,
  alertWebhook: undefined,
  dashboardDir: undefined,
};

/** Flag name, environment variable and YAML key of each setting. */
const SETTINGS = {
  grpc: { flag: 'grpc', env: 'HTTPMESH_GRPC' },
  http: { flag: 'http', env: 'HTTPMESH_HTTP' },
  dataDir: { flag: 'data-dir', env: 'HTTPMESH_DATA_DIR' },
  store: { flag: 'store', env: 'HTTPMESH_STORE' },
  etcdEndpoints: { flag: 'etcd-endpoints', env: 'HTTPMESH_ETCD_ENDPOINTS' },
  etcdPrefix: { flag: 'etcd-prefix', env: 'HTTPMESH_ETCD_PREFIX' },
  caDir: { flag: 'ca-dir', env: 'HTTPMESH_CA_DIR' },
  adminToken: { flag: 'admin-token', env: 'HTTPMESH_ADMIN_TOKEN' },
  protectReads: { flag: 'protect-reads', env: 'HTTPMESH_PROTECT_READS' },
  alertWebhook: { flag: 'alert-webhook', env: 'HTTPMESH_ALERT_WEBHOOK' },
  dashboardDir: { flag: 'dashboard-dir', env: 'HTTPMESH_DASHBOARD_DIR' },
} as const satisfies Record<keyof ServeConfig, { flag: string; env: string }>;

export const USAGE = `Usage:
  httpmesh-control-plane serve [options]
  httpmesh-control-plane issue-cert --ca-dir DIR --node-id ID --out DIR [--intercept-domains a.com,b.com]

serve options (flag > environment > YAML file > default):
  --config FILE            YAML file with the keys below in camelCase (env HTTPMESH_CONFIG)
  --grpc HOST:PORT         rule-sync port for sidecars (HTTPMESH_GRPC, default 127.0.0.1:15010;
                           plaintext on loopback unless --ca-dir is set, then mTLS)
  --http HOST:PORT         API, /metrics and dashboard (HTTPMESH_HTTP, default 127.0.0.1:8080)
  --data-dir DIR           embedded SQLite store directory (HTTPMESH_DATA_DIR, default ./.httpmesh/control-plane)
  --store sqlite|etcd      rule store (HTTPMESH_STORE, default sqlite)
  --etcd-endpoints URLS    comma-separated, e.g. http://10.0.0.5:2379 (HTTPMESH_ETCD_ENDPOINTS)
  --etcd-prefix PREFIX     key prefix shared by replicas (HTTPMESH_ETCD_PREFIX, default /httpmesh)
  --ca-dir DIR             root CA (created if missing) that signs sidecar mTLS certificates (HTTPMESH_CA_DIR)
  --admin-token TOKEN      bearer token for mutating calls (HTTPMESH_ADMIN_TOKEN; default: kept in DATA_DIR/admin-token, generated once)
  --protect-reads          read-only API calls need the admin token too (HTTPMESH_PROTECT_READS=true)
  --alert-webhook URL      JSON webhook called when alerts fire and resolve (HTTPMESH_ALERT_WEBHOOK)
  --dashboard-dir DIR      built dashboard served at / (HTTPMESH_DASHBOARD_DIR)
  -h, --help
`;

function coerce(key: keyof ServeConfig, value: unknown, source: string): Partial<ServeConfig> {
  const fail = (reason: string): never => {
    throw new ConfigError(`${source}: ${reason}`);
  };
  switch (key) {
    case 'protectReads':
      if (typeof value === 'boolean') return { protectReads: value };
      if (value === 'true' || value === '1') return { protectReads: true };
      if (value === 'false' || value === '0' || value === '') return { protectReads: false };
      return fail('must be true or false');
    case 'etcdEndpoints': {
      const list = Array.isArray(value)
        ? value
        : typeof value === 'string'
          ? value.split(',')
          : fail('must be a list or a comma-separated string');
      const endpoints = list
        .map((e) => (typeof e === 'string' ? e.trim() : fail('endpoints must be strings')))
        .filter((e) => e !== '');
      for (const e of endpoints)
        if (!/^https?:\/\/[^\s/]+$/.test(e)) fail(`"${e}" is not an http(s)://host:port endpoint`);
      if (endpoints.length === 0) fail('needs at least one endpoint');
      return { etcdEndpoints: endpoints };
    }
    case 'store':
      if (value !== 'sqlite' && value !== 'etcd') return fail('must be "sqlite" or "etcd"');
      return { store: value };
    case 'grpc':
    case 'http':
      if (
        typeof value !== 'string' ||
        !/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(value) ||
        Number(value.slice(value.lastIndexOf(':') + 1)) > 65535
      ) {
        return fail('must be HOST:PORT (port 0-65535)');
      }
      return { [key]: value };
    default:
      if (typeof value !== 'string' || value === '') return fail('must be a non-empty string');
      return { [key]: value };
  }
}

/** Resolves the serve configuration: flags over HTTPMESH_* environment over the YAML file over defaults. */
export function resolveServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServeConfig {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string' },
        grpc: { type: 'string' },
        http: { type: 'string' },
        'data-dir': { type: 'string' },
        store: { type: 'string' },
        'etcd-endpoints': { type: 'string' },
        'etcd-prefix': { type: 'string' },
        'ca-dir': { type: 'string' },
        'admin-token': { type: 'string' },
        'protect-reads': { type: 'boolean' },
        'alert-webhook': { type: 'string' },
        'dashboard-dir': { type: 'string' },
      },
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const flags = parsed.values as Record<string, string | boolean | undefined>;
  let config: ServeConfig = { ...DEFAULTS, etcdEndpoints: [...DEFAULTS.etcdEndpoints] };
  const file = (flags['config'] as string | undefined) ?? env['HTTPMESH_CONFIG'];
  if (file !== undefined && file !== '') {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc))
        throw new ConfigError(`config file ${file}: must be a YAML mapping`);
      for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
        if (!(key in SETTINGS))
          throw new ConfigError(
            `config file ${file}: unknown key "${key}" (known: ${Object.keys(SETTINGS).join(', ')})`,
          );
        config = { ...config, ...coerce(key as keyof ServeConfig, value, `config file ${file}: ${key}`) };
      }
    }
  }
  for (const [key, setting] of Object.entries(SETTINGS) as [
    keyof ServeConfig,
    { flag: string; env: string },
  ][]) {
    const value = env[setting.env];
    if (value !== undefined && value !== '') config = { ...config, ...coerce(key, value, setting.env) };
  }
  for (const [key, setting] of Object.entries(SETTINGS) as [
    keyof ServeConfig,
    { flag: string; env: string },
  ][]) {
    const value = flags[setting.flag];
    if (value !== undefined) config = { ...config, ...coerce(key, value, `--${setting.flag}`) };
  }
  return config;
}
