import './style.css';
import {
  type AlertStatus,
  ControlPlaneApi,
  type MetricKey,
  type MetricRow,
  type RuleRevision,
  type SeriesPoint,
  type Sidecar,
  type StoredRule,
  tokenFromFragment,
} from './api.js';
import { latencyChart } from './chart.js';
import { formatLatency, formatPercent, formatRate, formatTime, h, shortVersion } from './view.js';

const POLL_MS = 2_000;
const WINDOW = '1m';
const CHART_WINDOW = '5m';
/** Rule-sync resource types (proto enum values) by name, for the sidecar table. */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  '1': 'InterceptRule',
  '2': 'RouteSet',
  '3': 'Policy',
  '4': 'PluginConfig',
};

interface State {
  patterns: MetricRow[];
  services: MetricRow[];
  sidecars: Sidecar[];
  rules: StoredRule[];
  alerts: AlertStatus[];
  charts: Map<string, SeriesPoint[]>;
  /** Rule history by `kind/name@revision`, fetched again only when a rule's revision changes. */
  history: Map<string, RuleRevision[]>;
  errors: string[];
  updatedAt: Date | null;
}

const api = new ControlPlaneApi(`${location.origin}/`, tokenFromFragment(location.hash));
const state: State = {
  patterns: [],
  services: [],
  sidecars: [],
  rules: [],
  alerts: [],
  charts: new Map(),
  history: new Map(),
  errors: [],
  updatedAt: null,
};

const keyOf = (key: MetricKey): string =>
  [key.service, key.direction, key.host, key.method, key.route].map((v) => v ?? '').join('\u0000');

async function settle<T>(label: string, promise: Promise<T>, errors: string[]): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    errors.push(`${label}: ${(err as Error).message}`);
    return undefined;
  }
}

async function refresh(): Promise<void> {
  const errors: string[] = [];
  const [patterns, services, sidecars, rules, alerts] = await Promise.all([
    settle('patterns', api.patterns(WINDOW), errors),
    settle('services', api.services(WINDOW), errors),
    settle('sidecars', api.sidecars(), errors),
    settle('rules', api.rules(), errors),
    settle('alerts', api.alerts(), errors),
  ]);
  if (patterns !== undefined) state.patterns = patterns;
  if (services !== undefined) state.services = services;
  if (sidecars !== undefined) state.sidecars = sidecars;
  if (rules !== undefined) state.rules = rules;
  if (alerts !== undefined) state.alerts = alerts;
  await Promise.all([
    ...state.patterns.map(async (row) => {
      const points = await settle('latency', api.timeseries(CHART_WINDOW, row.key), errors);
      if (points !== undefined) state.charts.set(keyOf(row.key), points);
    }),
    ...state.rules.map(async (rule) => {
      const id = `${rule.kind}/${rule.name}@${rule.revision}`;
      if (state.history.has(id)) return;
      const history = await settle('history', api.history(rule.kind, rule.name), errors);
      if (history !== undefined) state.history.set(id, history);
    }),
  ]);
  state.errors = [...new Set(errors)];
  state.updatedAt = new Date();
  render();
}

function section(id: string, title: string, ...body: (Node | null)[]): HTMLElement {
  return h('section', { id, 'data-testid': id }, h('h2', {}, title), ...body.filter((n) => n !== null));
}

function empty(text: string): HTMLElement {
  return h('p', { class: 'empty' }, text);
}

function patternRow(row: MetricRow): HTMLElement {
  const k = row.key;
  const label = `${k.method ?? '*'} ${k.route ?? ''}`;
  const points = state.charts.get(keyOf(k)) ?? [];
  return h(
    'tr',
    { 'data-testid': 'pattern-row', 'data-pattern': label, 'data-host': k.host ?? '' },
    h('td', { class: 'pattern' }, h('code', {}, label)),
    h('td', {}, k.host ?? '–'),
    h('td', {}, k.direction ?? '–'),
    h('td', { class: 'num', 'data-field': 'rate' }, formatRate(row.rate)),
    h('td', { class: 'num', 'data-field': 'requests' }, row.requests),
    h(
      'td',
      { class: row.errorRatio > 0.05 ? 'num bad' : 'num', 'data-field': 'errors' },
      formatPercent(row.errorRatio),
    ),
    h('td', { class: 'num', 'data-field': 'p50' }, formatLatency(row.p50)),
    h('td', { class: 'num', 'data-field': 'p95' }, formatLatency(row.p95)),
    h('td', { class: 'num', 'data-field': 'p99' }, formatLatency(row.p99)),
    h('td', { class: 'chart-cell' }, latencyChart(points, label)),
  );
}

function servicesView(): HTMLElement {
  const byService = new Map<string, MetricRow[]>();
  for (const row of state.patterns) {
    const service = row.key.service ?? '(unknown)';
    byService.set(service, [...(byService.get(service) ?? []), row]);
  }
  if (byService.size === 0) return section('services', 'Services', empty('No traffic reported yet.'));
  const blocks = [...byService].map(([service, rows]) => {
    const summary = state.services.filter((r) => r.key.service === service);
    const rate = summary.reduce((sum, r) => sum + r.rate, 0);
    const requests = summary.reduce((sum, r) => sum + r.requests, 0);
    const errors = summary.reduce((sum, r) => sum + r.errors, 0);
    return h(
      'div',
      { class: 'service', 'data-testid': 'service', 'data-service': service },
      h(
        'h3',
        {},
        service,
        h(
          'span',
          { class: 'summary' },
          ` ${formatRate(rate)} · ${requests} requests · ${formatPercent(requests === 0 ? 0 : errors / requests)} errors (last ${WINDOW})`,
        ),
      ),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Pattern', 'Host', 'Direction', 'Rate', 'Requests', 'Errors', 'p50', 'p95', 'p99'].map((t) =>
              h('th', {}, t),
            ),
            h('th', {}, `Latency (${CHART_WINDOW})`),
          ),
        ),
        h('tbody', {}, ...rows.map(patternRow)),
      ),
    );
  });
  return section('services', 'Services and patterns', ...blocks);
}

function sidecarsView(): HTMLElement {
  if (state.sidecars.length === 0) return section('sidecars', 'Sidecars', empty('No sidecar connected.'));
  const rows = state.sidecars.map((sc) =>
    h(
      'tr',
      { 'data-testid': 'sidecar-row', 'data-sidecar': sc.id },
      h('td', {}, h('code', {}, sc.id)),
      h('td', {}, sc.service),
      h(
        'td',
        {},
        Object.entries(sc.labels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || '–',
      ),
      h('td', {}, formatTime(sc.connectedAt)),
      h(
        'td',
        {},
        ...sc.types.map((t) => {
          const name = TYPE_NAMES[String(t.type)] ?? String(t.type);
          const nacked = t.nackedVersion !== null;
          return h(
            'div',
            { class: nacked ? 'type nacked' : 'type', 'data-type': name },
            `${name}: `,
            h('span', { class: 'ok', title: t.ackedVersion ?? '' }, `ACK ${shortVersion(t.ackedVersion)}`),
            nacked ? h('span', { class: 'bad' }, ` NACK ${shortVersion(t.nackedVersion)}`) : null,
            t.pending ? h('span', { class: 'muted' }, ' (push pending)') : null,
            t.lastError !== null ? h('div', { class: 'bad small' }, `last error: ${t.lastError}`) : null,
          );
        }),
      ),
    ),
  );
  return section(
    'sidecars',
    'Connected sidecars',
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['Node', 'Service', 'Labels', 'Connected', 'Rule versions'].map((t) => h('th', {}, t)),
        ),
      ),
      h('tbody', {}, ...rows),
    ),
  );
}

function rulesView(): HTMLElement {
  if (state.rules.length === 0) return section('rules', 'Rules', empty('No rules stored.'));
  const rules = [...state.rules].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  const items = rules.map((rule) => {
    const history = state.history.get(`${rule.kind}/${rule.name}@${rule.revision}`) ?? [];
    return h(
      'details',
      { class: 'rule', 'data-testid': 'rule', 'data-rule': `${rule.kind}/${rule.name}` },
      h(
        'summary',
        {},
        h('span', { class: 'kind' }, rule.kind),
        ' ',
        h('strong', {}, rule.name),
        h(
          'span',
          { class: 'muted' },
          ` rev ${rule.revision} · ${rule.updatedBy} · ${formatTime(rule.updatedAt)}`,
        ),
      ),
      h('pre', {}, JSON.stringify(rule.spec, null, 2)),
      h(
        'ul',
        { class: 'history', 'data-testid': 'rule-history' },
        ...[...history]
          .reverse()
          .map((rev) =>
            h(
              'li',
              { 'data-revision': String(rev.revision) },
              `rev ${rev.revision} ${rev.action} by ${rev.author} at ${formatTime(rev.at)}`,
            ),
          ),
      ),
    );
  });
  return section('rules', 'Rules', ...items);
}

function alertsView(): HTMLElement {
  const active = state.alerts.filter((a) => a.state !== 'inactive');
  const list =
    active.length === 0
      ? empty(`No active alerts (${state.alerts.length} alert rule${state.alerts.length === 1 ? '' : 's'}).`)
      : h(
          'ul',
          {},
          ...active.map((a) =>
            h(
              'li',
              { 'data-testid': 'alert', class: a.state === 'firing' ? 'bad' : 'warn' },
              `${a.name}: ${a.state}${a.value === null ? '' : ` (value ${a.value.toPrecision(3)})`} since ${formatTime(a.firedAt ?? a.activeSince)}`,
            ),
          ),
        );
  return section('alerts', 'Active alerts', list);
}

function render(): void {
  const root = document.getElementById('app');
  if (root === null) return;
  const status = h(
    'div',
    { class: 'status', 'data-testid': 'status' },
    state.updatedAt === null ? 'loading…' : `updated ${state.updatedAt.toLocaleTimeString()}`,
    ...state.errors.map((e) => h('div', { class: 'bad', 'data-testid': 'error' }, e)),
  );
  // Keep open <details> open across re-renders.
  const open = new Set(
    [...root.querySelectorAll<HTMLDetailsElement>('details[open]')].map((d) => d.dataset['rule']),
  );
  root.replaceChildren(status, alertsView(), servicesView(), sidecarsView(), rulesView());
  for (const d of root.querySelectorAll<HTMLDetailsElement>('details')) {
    if (open.has(d.dataset['rule'])) d.open = true;
  }
}

async function loop(): Promise<void> {
  await refresh().catch((err: unknown) => {
    state.errors = [(err as Error).message];
    render();
  });
  setTimeout(() => void loop(), POLL_MS);
}

render();
void loop();
