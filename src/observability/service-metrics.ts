/**
 * The per-service families (synfin_service_*{service}), every named service and `other` exported
 * at zero from the start, and again whenever the services change (a reload of --service-file):
 * series of names that went away are gone from the next scrape, new names appear at zero, and
 * names that stay keep their counts.
 *
 * Counters and the histogram are counted per service in typed arrays by the registry's event
 * handlers (the connection's service index is on its flow, decided once when its SYN arrived);
 * bytes are counted by each pipe in its service's ByteCounters as they flow. The gauges come from
 * one walk of the stack's columns per scrape (the service index is a column), shared by the three
 * gauge families.
 *
 * Cost: 64 services are ~7,000 series (the connect histogram is most of them). prom-client
 * formats every label object of every sample on every scrape (~1.5 µs each: ~10 ms for these),
 * so for the Prometheus text format the lines are rendered from series texts made once per
 * catalogue (TextFamilyView). The OpenMetrics view (and the JSON one) builds ordinary label
 * objects, at prom-client's cost. bench/service-scrape.mjs measures a scrape.
 */
import type client from 'prom-client';
import type { Clock } from '../stack/clock.js';
import type { ByteCounters } from '../stack/upstream-leg.js';
import type { CloseReason, ResetDirection } from '../tcp/events.js';
import { State, STATE_NAMES } from '../tcp/state.js';
import { CLOSE_REASONS, UPSTREAM_RESULTS, type ConnectionSample, type UpstreamResultLabel } from './metrics.js';
import type { ServiceCatalogue, Services } from './services.js';

/** Upstream connect buckets per service (seconds): fewer than the global family's, 65 services × 5 results of them. */
export const SERVICE_CONNECT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The states a connection of the table can be in (not the wildcard LISTEN, not CLOSED: a closed connection has left). */
export const SERVICE_STATES: readonly State[] = [
  State.SYN_SENT,
  State.SYN_RECEIVED,
  State.ESTABLISHED,
  State.FIN_WAIT_1,
  State.FIN_WAIT_2,
  State.CLOSE_WAIT,
  State.CLOSING,
  State.LAST_ACK,
  State.TIME_WAIT,
];
const WAITING_ON = ['app', 'upstream'] as const;
const RESET_DIRECTIONS: readonly ResetDirection[] = ['sent', 'received'];
const BYTE_DIRECTIONS = ['client_to_upstream', 'upstream_to_client'] as const;
const NB = SERVICE_CONNECT_BUCKETS.length + 1;

/** One service's event-fed counts; kept across reloads while its name stays. */
class ServiceStats {
  readonly bytes: ByteCounters = { bytesClientToUpstream: 0, bytesUpstreamToClient: 0 };
  readonly closed = new Float64Array(CLOSE_REASONS.length);
  readonly resets = new Float64Array(RESET_DIRECTIONS.length);
  /** Per result: non-cumulative bucket counts (the last above every bound), then sum and count. */
  readonly connectCounts = new Float64Array(UPSTREAM_RESULTS.length * NB);
  readonly connectSums = new Float64Array(UPSTREAM_RESULTS.length);
  readonly connectTotals = new Float64Array(UPSTREAM_RESULTS.length);
  /** Per result: its histogram's bucket and sum lines as of `connectTextAt` observations (most do not change between scrapes). */
  readonly connectText: string[] = UPSTREAM_RESULTS.map(() => '');
  readonly connectTextAt = new Float64Array(UPSTREAM_RESULTS.length).fill(-1);
  constructor(readonly name: string) {}
}

type Labels = Record<string, string | number>;
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}
interface Snapshot {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  aggregator: 'sum';
  values: Sample[];
}

const NO_LABELS: Labels = Object.freeze({}) as Labels;

/** A series: its labels (for get()) and its pre-rendered text name (for getForPromString()). */
interface Series {
  labels: Labels;
  text: string;
}

function renderSeries(name: string, labels: Labels): Series {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return { labels, text: `${name}{${parts.join(',')}}` };
}

/** One family's series and values in matching order, as its views hand them to a registry. */
interface FamilySource {
  /** Fill `out` (one number per series, in series order); returns the series. */
  collect(): { series: readonly Series[]; values: Float64Array };
  /**
   * The whole family in the text format, where the source renders it itself: every line but the
   * last one's value (`head`), and that value; null when the family has no series.
   */
  text?(): { head: string; last: number } | null;
}

class FamilyView {
  readonly aggregator = 'sum' as const;
  constructor(
    public name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter' | 'histogram',
    private readonly source: FamilySource,
  ) {}
  get(): Promise<Snapshot> {
    const { series, values } = this.source.collect();
    const out: Sample[] = [];
    for (let i = 0; i < series.length; i++) {
      const s = series[i]!;
      // Histograms' series carry their sample name (_bucket, _sum, _count) in labels.__name.
      const { __name, ...labels } = s.labels as Labels & { __name?: string };
      out.push(__name === undefined ? { labels, value: values[i]! } : { labels, value: values[i]!, metricName: String(__name) });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: out });
  }
  reset(): void {}
}

/**
 * The Prometheus-text view. prom-client prints each sample as `${metricName}${labels} ${value}`,
 * formatting its label object every time (~1.5 µs a sample: 10 ms for 64 services' 7,000
 * samples). Here the family's lines are rendered by one loop over series texts made once per
 * catalogue, and handed over as one sample whose name is every line but the last value: the
 * output is the same text, at ~0.1 µs a line.
 */
class TextFamilyView extends FamilyView {
  private readonly src: FamilySource;
  constructor(name: string, help: string, type: 'gauge' | 'counter' | 'histogram', source: FamilySource) {
    super(name, help, type, source);
    this.src = source;
  }
  getForPromString(): Promise<Snapshot> {
    const own = this.src.text?.();
    if (own !== undefined) {
      // prom-client appends " value" to the one sample's name.
      const values = own === null ? [] : [{ labels: NO_LABELS, value: own.last, metricName: own.head }];
      return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: 'sum', values });
    }
    const { series, values } = this.src.collect();
    const n = series.length;
    if (n === 0) return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: [] });
    let text = '';
    for (let i = 0; i < n - 1; i++) text += `${series[i]!.text} ${formatValue(values[i]!)}\n`;
    text += series[n - 1]!.text;
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: [{ labels: NO_LABELS, value: values[n - 1]!, metricName: text }] });
  }
}

/** As prom-client prints a value (util.getValueAsString). */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

export interface ServiceMetricsSources {
  clock: Clock;
  /** Visit every connection (TIME-WAIT records included) once per scrape, `service` set. */
  forEachConnection(visit: (c: ConnectionSample) => void): void;
}

export class ServiceMetrics {
  private stats: ServiceStats[] = [];
  private catalogue: ServiceCatalogue;
  // Series per family, rebuilt when the services change.
  private connSeries: Series[] = [];
  private waitSeries: Series[] = [];
  private oldestSeries: Series[] = [];
  private closedSeries: Series[] = [];
  private bytesSeries: Series[] = [];
  private resetSeries: Series[] = [];
  private connectSeries: Series[] = [];
  // The scrape's walk.
  private perState = new Float64Array(0);
  private waiting = new Float64Array(0);
  private oldestWaiting = new Float64Array(0);
  private scanFresh = false;
  private readonly scanExpires = (): void => {
    this.scanFresh = false;
  };
  private readonly stateColumn = new Int32Array(STATE_NAMES.length).fill(-1);

  constructor(
    services: Services,
    private readonly sources: ServiceMetricsSources,
    registries: { text: readonly client.Registry[]; other: readonly client.Registry[] },
  ) {
    SERVICE_STATES.forEach((s, i) => (this.stateColumn[s] = i));
    this.catalogue = services.current;
    this.rebuild(services.current);
    services.onChange((next) => this.rebuild(next));
    const families: Array<[string, string, 'gauge' | 'counter' | 'histogram', FamilySource]> = [
      [
        'synfin_service_connections',
        'Connections of the userspace stack in each state now, by named service (--service; other = no service names the destination).',
        'gauge',
        { collect: () => this.collectConnections() },
      ],
      [
        'synfin_service_connections_waiting',
        'Half-closed connections waiting for one side to close, by service: on="app" = the destination closed and the app has not (its socket sits in CLOSE_WAIT).',
        'gauge',
        { collect: () => this.collectWaiting(false) },
      ],
      [
        'synfin_service_oldest_waiting_seconds',
        'How long the oldest half-closed connection of each service has waited for the other side to close (0 when none).',
        'gauge',
        { collect: () => this.collectWaiting(true) },
      ],
      [
        'synfin_service_connect_duration_seconds',
        'Kernel socket connect time to the destination, by service and result.',
        'histogram',
        { collect: () => this.collectConnect(), text: () => this.connectText() },
      ],
      [
        'synfin_service_connections_closed_total',
        'Connections closed, by service and reason (as synfin_tcp_connections_closed_total).',
        'counter',
        { collect: () => this.collectCounts(this.closedSeries, CLOSE_REASONS.length, (s) => s.closed) },
      ],
      [
        'synfin_service_bytes_total',
        'Payload bytes proxied, by service, counted as they flow.',
        'counter',
        { collect: () => this.collectCounts(this.bytesSeries, 2, (s) => [s.bytes.bytesClientToUpstream, s.bytes.bytesUpstreamToClient]) },
      ],
      [
        'synfin_service_resets_total',
        "Resets sent to or received from the app side on a service's connections (resets to segments of no connection are only in synfin_tcp_resets_total).",
        'counter',
        { collect: () => this.collectCounts(this.resetSeries, 2, (s) => s.resets) },
      ],
    ];
    for (const [name, help, type, source] of families) {
      for (const r of registries.text) r.registerMetric(new TextFamilyView(name, help, type, source) as unknown as client.Metric);
      // OpenMetrics prints gauges and histograms as the text format does; its counters are
      // renamed by prom-client (`_total` appended to each sample's name): those keep label objects.
      for (const r of registries.other) {
        const view = type === 'counter' ? new FamilyView(name, help, type, source) : new TextFamilyView(name, help, type, source);
        r.registerMetric(view as unknown as client.Metric);
      }
    }
  }

  /** Where a connection of service `index` counts its bytes (its pipe keeps the object). */
  bytesOf(index: number): ByteCounters {
    return (this.stats[index] ?? this.stats[0]!).bytes;
  }
  closed(index: number, reason: CloseReason): void {
    const s = this.stats[index] ?? this.stats[0]!;
    const r = CLOSE_REASONS.indexOf(reason);
    if (r >= 0) s.closed[r]! += 1;
  }
  reset(index: number, direction: ResetDirection): void {
    const s = this.stats[index] ?? this.stats[0]!;
    s.resets[direction === 'sent' ? 0 : 1]! += 1;
  }
  connect(index: number, result: UpstreamResultLabel, durationMs: number): void {
    const seconds = Math.max(0, durationMs) / 1000;
    if (!Number.isFinite(seconds)) return;
    const s = this.stats[index] ?? this.stats[0]!;
    const r = UPSTREAM_RESULTS.indexOf(result);
    if (r < 0) return;
    let b = 0;
    while (b < SERVICE_CONNECT_BUCKETS.length && seconds > SERVICE_CONNECT_BUCKETS[b]!) b++;
    s.connectCounts[r * NB + b]! += 1;
    s.connectSums[r]! += seconds;
    s.connectTotals[r]! += 1;
  }

  /** New series for the services now in force; the counts of names that stay are kept. */
  private rebuild(catalogue: ServiceCatalogue): void {
    this.catalogue = catalogue;
    const byName = new Map(this.stats.map((s) => [s.name, s]));
    this.stats = catalogue.names.map((n) => byName.get(n) ?? new ServiceStats(n));
    const names = catalogue.names;
    const n = names.length;
    this.perState = new Float64Array(n * SERVICE_STATES.length);
    this.waiting = new Float64Array(n * 2);
    this.oldestWaiting = new Float64Array(n * 2);
    this.scanFresh = false;
    const series = (name: string, label: string, values: readonly string[]): Series[] =>
      names.flatMap((service) => values.map((v) => renderSeries(name, { service, [label]: v })));
    this.connSeries = series('synfin_service_connections', 'state', SERVICE_STATES.map((s) => STATE_NAMES[s]!));
    this.waitSeries = series('synfin_service_connections_waiting', 'on', WAITING_ON);
    this.oldestSeries = series('synfin_service_oldest_waiting_seconds', 'on', WAITING_ON);
    this.closedSeries = series('synfin_service_connections_closed_total', 'reason', CLOSE_REASONS);
    this.bytesSeries = series('synfin_service_bytes_total', 'direction', BYTE_DIRECTIONS);
    this.resetSeries = series('synfin_service_resets_total', 'direction', RESET_DIRECTIONS);
    const h = 'synfin_service_connect_duration_seconds';
    this.connectSeries = names.flatMap((service) =>
      UPSTREAM_RESULTS.flatMap((result) => [
        // `le` first, as prom-client renders its own histograms.
        ...[...SERVICE_CONNECT_BUCKETS.map(String), '+Inf'].map((le) => renderHist(`${h}_bucket`, { le, service, result })),
        renderHist(`${h}_sum`, { service, result }),
        renderHist(`${h}_count`, { service, result }),
      ]),
    );
  }

  /** One walk of the table per scrape, shared by the three gauge families (see metrics.ts scanTable). */
  private scan(): void {
    if (this.scanFresh) return;
    this.scanFresh = true;
    queueMicrotask(this.scanExpires);
    const perState = this.perState;
    const waiting = this.waiting;
    const oldest = this.oldestWaiting;
    perState.fill(0);
    waiting.fill(0);
    oldest.fill(Infinity);
    const width = SERVICE_STATES.length;
    const column = this.stateColumn;
    const services = this.catalogue.names.length;
    this.sources.forEachConnection((c) => {
      let svc = c.service ?? 0;
      if (svc >= services) svc = 0;
      const col = column[c.state]!;
      if (col >= 0) perState[svc * width + col]! += 1;
      if (c.waitingOn !== null) {
        const w = svc * 2 + (c.waitingOn === 'app' ? 0 : 1);
        waiting[w]! += 1;
        if (c.waitingSince < oldest[w]!) oldest[w] = c.waitingSince;
      }
    });
  }

  private collectConnections(): { series: readonly Series[]; values: Float64Array } {
    this.scan();
    return { series: this.connSeries, values: this.perState };
  }

  private collectWaiting(oldest: boolean): { series: readonly Series[]; values: Float64Array } {
    this.scan();
    if (!oldest) return { series: this.waitSeries, values: this.waiting };
    const now = this.sources.clock.now();
    const at = this.oldestWaiting;
    const values = new Float64Array(at.length);
    for (let i = 0; i < at.length; i++) values[i] = at[i] === Infinity ? 0 : Math.max(0, now - at[i]!) / 1000;
    return { series: this.oldestSeries, values };
  }

  private collectCounts(series: readonly Series[], width: number, read: (s: ServiceStats) => ArrayLike<number>): { series: readonly Series[]; values: Float64Array } {
    const values = new Float64Array(series.length);
    this.stats.forEach((s, i) => {
      const v = read(s);
      for (let k = 0; k < width; k++) values[i * width + k] = v[k]!;
    });
    return { series, values };
  }

  /**
   * The histogram's text from per-service, per-result blocks, each rendered again only when it
   * observed something since the last scrape: 64 services' 5,500 lines cost a join of 325 strings.
   */
  private connectText(): { head: string; last: number } | null {
    const h = 'synfin_service_connect_duration_seconds';
    const les = [...SERVICE_CONNECT_BUCKETS.map(String), '+Inf'];
    let head = '';
    let last = 0;
    for (const s of this.stats) {
      for (let r = 0; r < UPSTREAM_RESULTS.length; r++) {
        const total = s.connectTotals[r]!;
        if (s.connectTextAt[r] !== total) {
          // Names and results never need escaping (services.ts SERVICE_NAME_PATTERN).
          const labels = `service="${s.name}",result="${UPSTREAM_RESULTS[r]!}"`;
          let block = '';
          let cumulative = 0;
          for (let b = 0; b < NB; b++) {
            cumulative += s.connectCounts[r * NB + b]!;
            block += `${h}_bucket{le="${les[b]!}",${labels}} ${formatValue(cumulative)}\n`;
          }
          block += `${h}_sum{${labels}} ${formatValue(s.connectSums[r]!)}\n${h}_count{${labels}}`;
          s.connectText[r] = block;
          s.connectTextAt[r] = total;
        }
        if (head !== '') head += ` ${formatValue(last)}\n`;
        head += s.connectText[r]!;
        last = total;
      }
    }
    return head === '' ? null : { head, last };
  }

  private collectConnect(): { series: readonly Series[]; values: Float64Array } {
    const series = this.connectSeries;
    const values = new Float64Array(series.length);
    let at = 0;
    for (const s of this.stats) {
      for (let r = 0; r < UPSTREAM_RESULTS.length; r++) {
        let cumulative = 0;
        for (let b = 0; b < NB; b++) {
          cumulative += s.connectCounts[r * NB + b]!;
          values[at++] = cumulative;
        }
        values[at++] = s.connectSums[r]!;
        values[at++] = s.connectTotals[r]!;
      }
    }
    return { series, values };
  }
}

/** A histogram sample: its sample name travels in the labels (`__name`) for the label-object view. */
function renderHist(sampleName: string, labels: Labels): Series {
  const s = renderSeries(sampleName, labels);
  return { labels: { __name: sampleName, ...labels }, text: s.text };
}
