/** Read-only client for the control plane's JSON API (see docs/control-plane-api.yaml). */

export interface MetricKey {
  service?: string | null;
  host?: string | null;
  method?: string | null;
  route?: string | null;
  direction?: string | null;
}

export interface MetricRow {
  key: MetricKey;
  requests: number;
  errors: number;
  rate: number;
  errorRatio: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface SeriesPoint {
  start: number;
  requests: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface SidecarType {
  type: string | number;
  ackedVersion: string | null;
  nackedVersion: string | null;
  lastError: string | null;
  pending: boolean;
}

export interface Sidecar {
  id: string;
  service: string;
  labels: Record<string, string>;
  version?: string;
  peer?: string;
  connectedAt: string;
  lastHeartbeatAt: string | null;
  types: SidecarType[];
}

export interface StoredRule {
  kind: string;
  name: string;
  spec: Record<string, unknown>;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export interface RuleRevision {
  kind: string;
  name: string;
  revision: number;
  action: string;
  spec: Record<string, unknown> | null;
  author: string;
  at: string;
}

export interface AlertStatus {
  name: string;
  state: string;
  value: number | null;
  activeSince?: string;
  firedAt?: string;
  rule: Record<string, unknown>;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The admin token, when the control plane protects reads, comes from the URL fragment: `#token=…`. */
export function tokenFromFragment(hash: string): string | undefined {
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const token = params.get('token');
  return token === null || token === '' ? undefined : token;
}

export class ControlPlaneApi {
  constructor(
    private readonly base: string,
    private readonly token: string | undefined,
  ) {}

  private async get<T>(path: string): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    const res = await fetch(new URL(path, this.base), { headers, cache: 'no-store' });
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    if (!res.ok) {
      throw new ApiError(res.status, body.error?.code ?? 'HTTP_ERROR', body.error?.message ?? res.statusText);
    }
    return body as T;
  }

  async patterns(window: string): Promise<MetricRow[]> {
    return (await this.get<{ rows: MetricRow[] }>(`api/metrics/patterns?window=${window}`)).rows;
  }

  async services(window: string): Promise<MetricRow[]> {
    return (await this.get<{ rows: MetricRow[] }>(`api/metrics/services?window=${window}`)).rows;
  }

  async timeseries(window: string, key: MetricKey): Promise<SeriesPoint[]> {
    const query = new URLSearchParams({ window });
    for (const name of ['service', 'host', 'method', 'route', 'direction'] as const) {
      const value = key[name];
      if (typeof value === 'string') query.set(name, value);
    }
    return (await this.get<{ points: SeriesPoint[] }>(`api/metrics/timeseries?${query}`)).points;
  }

  async sidecars(): Promise<Sidecar[]> {
    return (await this.get<{ sidecars: Sidecar[] }>('api/sidecars')).sidecars;
  }

  async rules(): Promise<StoredRule[]> {
    return (await this.get<{ rules: StoredRule[] }>('api/rules')).rules;
  }

  async history(kind: string, name: string): Promise<RuleRevision[]> {
    const path = `api/rules/${encodeURIComponent(kind)}/${encodeURIComponent(name)}/history`;
    return (await this.get<{ history: RuleRevision[] }>(path)).history;
  }

  async alerts(): Promise<AlertStatus[]> {
    return (await this.get<{ alerts: AlertStatus[] }>('api/alerts')).alerts;
  }
}
