// hutchd's metrics in the Prometheus text exposition format 0.0.4: latency histograms and request
// counters kept here, sandbox and pool gauges given by the caller at render time.

/** Histogram buckets (seconds) for latencies from about a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The content type of `render`'s output. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The states always shown by hutch_sandboxes (0 when none), so that dashboards see every series. */
const KNOWN_STATES = ['creating', 'ready', 'running', 'paused', 'stopped', 'deleting'];

/** At most this many distinct request label sets; later new ones are counted under route="other". */
const MAX_REQUEST_SERIES = 1000;

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and newline. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as Prometheus writes it. */
function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** `{a="x",b="y"}` from label pairs (empty string for none). */
function labelText(labels: [string, string][]): string {
  return labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** One histogram series: cumulative counts are computed at render time from per-bucket counts. */
class HistogramSeries {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    const v = Number.isFinite(seconds) && seconds >= 0 ? seconds : 0;
    const i = LATENCY_BUCKETS.findIndex((b) => v <= b);
    if (i >= 0) this.counts[i]! += 1;
    this.sum += v;
    this.count += 1;
  }
}

/** A histogram with labels: series keyed by their label values. */
class Histogram {
  private readonly series = new Map<string, { labels: [string, string][]; h: HistogramSeries }>();
  constructor(readonly name: string, readonly help: string) {}

  observe(labels: [string, string][], seconds: number): void {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, h: new HistogramSeries() };
      this.series.set(key, s);
    }
    s.h.observe(seconds);
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`);
    for (const { labels, h } of this.series.values()) {
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((b, i) => {
        cumulative += h.counts[i]!;
        out.push(`${this.name}_bucket${labelText([...labels, ['le', formatValue(b)]])} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${labelText([...labels, ['le', '+Inf']])} ${h.count}`);
      out.push(`${this.name}_sum${labelText(labels)} ${formatValue(h.sum)}`);
      out.push(`${this.name}_count${labelText(labels)} ${h.count}`);
    }
  }
}

/** What the caller knows at render time: sandboxes by state, and each pool's ready and target sizes. */
export interface MetricsSnapshot {
  sandboxesByState: Record<string, number>;
  pools: Record<string, { ready: number; target: number }>;
  /** Packets each networked sandbox's egress policy dropped, by sandbox id. */
  networkDropped?: Record<string, number>;
}

/**
 * hutchd's metrics. Names: hutch_sandbox_create_seconds{source}, hutch_exec_seconds,
 * hutch_http_requests_total{method,route,status}, hutch_http_request_duration_seconds{method,route},
 * hutch_sandboxes{state}, hutch_pool_ready{image}, hutch_pool_target{image}, hutch_network_dropped_packets{sandbox}.
 */
export class Metrics {
  private readonly create = new Histogram('hutch_sandbox_create_seconds', 'Time from a create request until the sandbox is ready for exec, by source (pool claim or cold create).');
  private readonly exec = new Histogram('hutch_exec_seconds', 'Time until a process started by exec is running in its sandbox.');
  private readonly requestDuration = new Histogram('hutch_http_request_duration_seconds', 'Time to answer an HTTP request of the API, by method and route.');
  private readonly requests = new Map<string, { labels: [string, string][]; n: number }>();

  /** Records how long a create took, and whether it was a claim from the warm pool or a cold create. */
  observeCreate(seconds: number, source: 'pool' | 'cold'): void {
    this.create.observe([['source', source]], seconds);
  }

  /** Records how long an exec took to start its process. */
  observeExec(seconds: number): void {
    this.exec.observe([], seconds);
  }

  /** Counts an answered request and records its duration. `route` should be a template (/sandboxes/:id). */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    let r = route;
    const keyOf = (rt: string) => JSON.stringify([method, rt, status]);
    if (!this.requests.has(keyOf(r)) && this.requests.size >= MAX_REQUEST_SERIES) r = 'other';
    const key = keyOf(r);
    let c = this.requests.get(key);
    if (!c) {
      c = { labels: [['method', method], ['route', r], ['status', String(status)]], n: 0 };
      this.requests.set(key, c);
    }
    c.n += 1;
    // (method, route) pairs are a projection of the counted series, so this stays bounded too.
    this.requestDuration.observe([['method', method], ['route', r]], seconds);
  }

  /** Every metric as Prometheus text (format 0.0.4), ending with a newline. */
  render(s: MetricsSnapshot): string {
    const out: string[] = [];
    out.push('# HELP hutch_sandboxes Sandboxes of this hutchd state root by observed state.', '# TYPE hutch_sandboxes gauge');
    const states: Record<string, number> = Object.fromEntries(KNOWN_STATES.map((k) => [k, 0]));
    for (const [k, v] of Object.entries(s.sandboxesByState)) states[k] = v;
    for (const [state, n] of Object.entries(states)) out.push(`hutch_sandboxes${labelText([['state', state]])} ${formatValue(n)}`);

    out.push('# HELP hutch_pool_ready Started, unclaimed sandboxes in the warm pool, by image.', '# TYPE hutch_pool_ready gauge');
    for (const [image, p] of Object.entries(s.pools)) out.push(`hutch_pool_ready${labelText([['image', image]])} ${formatValue(p.ready)}`);
    out.push('# HELP hutch_pool_target Configured size of the warm pool, by image.', '# TYPE hutch_pool_target gauge');
    for (const [image, p] of Object.entries(s.pools)) out.push(`hutch_pool_target${labelText([['image', image]])} ${formatValue(p.target)}`);

    if (s.networkDropped && Object.keys(s.networkDropped).length) {
      out.push('# HELP hutch_network_dropped_packets Packets a sandbox\'s egress policy dropped, by sandbox.', '# TYPE hutch_network_dropped_packets counter');
      for (const [id, n] of Object.entries(s.networkDropped)) out.push(`hutch_network_dropped_packets${labelText([['sandbox', id]])} ${formatValue(n)}`);
    }

    this.create.render(out);
    this.exec.render(out);

    out.push('# HELP hutch_http_requests_total API requests answered, by method, route and status.', '# TYPE hutch_http_requests_total counter');
    for (const { labels, n } of this.requests.values()) out.push(`hutch_http_requests_total${labelText(labels)} ${n}`);
    this.requestDuration.render(out);
    return out.join('\n') + '\n';
  }
}
