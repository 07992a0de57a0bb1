/**
 * Counters and histograms whose series are counted in typed arrays on the hot path and handed to
 * prom-client's registries only when they render a scrape.
 *
 * Why not prom-client's Counter and Histogram: each inc() or observe() builds a label object and
 * hashes it into a string key (~0.6 µs and a few allocations); a short connection feeds ~16 of
 * them (its transitions, durations, handshake, close). Here the caller passes the series' index,
 * resolved once (a table indexed by state pair, a constant), and the update is an array add.
 *
 * Each registry gets its own view object of a family (same numbers, own `name`): prom-client's
 * OpenMetrics rendering renames the counters it renders (strips `_total`, to add it back in its
 * own output), and a counter object shared with the Prometheus-text registry would lose its
 * `_total` in every text scrape that followed.
 */
import type client from 'prom-client';
import { MetricLabelsError } from '../errors.js';

type Labels = Record<string, string | number>;

interface SampleValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: SampleValue[];
}

/** What a prom-client registry needs of a metric (registerMetric, metrics(), getMetricsAsJSON). */
class FamilyView {
  type: 'counter' | 'histogram';
  aggregator = 'sum' as const;
  constructor(
    public name: string,
    readonly help: string,
    private readonly family: { snapshot(name: string): MetricSnapshot; type: 'counter' | 'histogram'; zero(): void },
  ) {
    this.type = family.type;
  }
  get(): Promise<MetricSnapshot> {
    return Promise.resolve(this.family.snapshot(this.name));
  }
  reset(): void {
    this.family.zero();
  }
}

function register(registries: readonly client.Registry[], name: string, help: string, family: { snapshot(name: string): MetricSnapshot; type: 'counter' | 'histogram'; zero(): void }): void {
  for (const r of registries) r.registerMetric(new FamilyView(name, help, family) as unknown as client.Metric);
}

/** A counter with a fixed label set list, extended on demand (series are never removed). */
export class CounterFamily {
  readonly type = 'counter' as const;
  private values: Float64Array;
  private readonly labelSets: Labels[] = [];
  private readonly indexByKey = new Map<string, number>();

  /**
   * @param labelSets the series that exist from the start, at zero (each: one value per label name)
   * @param refresh called before each render, to set series kept elsewhere (set())
   */
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    labelSets: ReadonlyArray<readonly string[]>,
    registries: readonly client.Registry[],
    private readonly refresh?: (family: CounterFamily) => void,
  ) {
    this.values = new Float64Array(Math.max(4, labelSets.length));
    for (const set of labelSets) this.indexOf(...set);
    if (labelNames.length === 0 && labelSets.length === 0) this.indexOf();
    register(registries, name, help, this);
  }

  /** The series for these label values (in labelNames order), created at zero when new. */
  indexOf(...labelValues: string[]): number {
    const key = labelValues.join('\u0000');
    let i = this.indexByKey.get(key);
    if (i === undefined) {
      if (labelValues.length !== this.labelNames.length) {
        throw new MetricLabelsError(`${this.name}: ${labelValues.length} label values for ${this.labelNames.length} labels`);
      }
      i = this.labelSets.length;
      const labels: Labels = {};
      this.labelNames.forEach((n, k) => (labels[n] = labelValues[k]!));
      this.labelSets.push(labels);
      this.indexByKey.set(key, i);
      if (i >= this.values.length) {
        const grown = new Float64Array(this.values.length * 2);
        grown.set(this.values);
        this.values = grown;
      }
    }
    return i;
  }

  /**
   * indexOf for a family of one label, without the array and key string a call of indexOf makes
   * (the key of one value is the value): what the events of every connection use.
   */
  indexOfOne(value: string): number {
    return this.indexByKey.get(value) ?? this.indexOf(value);
  }

  add(index: number, n = 1): void {
    this.values[index]! += n;
  }

  /** For counts kept elsewhere (refresh): the series' total now. */
  set(index: number, total: number): void {
    this.values[index] = total;
  }

  value(index: number): number {
    return this.values[index]!;
  }

  zero(): void {
    this.values.fill(0);
  }

  snapshot(name: string): MetricSnapshot {
    this.refresh?.(this);
    const values: SampleValue[] = [];
    for (let i = 0; i < this.labelSets.length; i++) values.push({ labels: this.labelSets[i]!, value: this.values[i]! });
    return { name, help: this.help, type: 'counter', aggregator: 'sum', values };
  }
}

/** A histogram with one optional label whose values are known up front. */
export class HistogramFamily {
  readonly type = 'histogram' as const;
  private readonly bounds: Float64Array;
  /** Per series: one count per bound and one above the last (non-cumulative). */
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  private readonly totals: Float64Array;
  private readonly baseLabels: Labels[];
  private readonly bucketLabels: Labels[][];

  constructor(
    readonly name: string,
    readonly help: string,
    labelName: string | null,
    labelValues: readonly string[],
    buckets: readonly number[],
    registries: readonly client.Registry[],
  ) {
    const series = labelName === null ? 1 : labelValues.length;
    this.bounds = Float64Array.from([...buckets].sort((a, b) => a - b));
    this.counts = new Float64Array(series * (this.bounds.length + 1));
    this.sums = new Float64Array(series);
    this.totals = new Float64Array(series);
    this.baseLabels = [];
    this.bucketLabels = [];
    for (let s = 0; s < series; s++) {
      const base: Labels = labelName === null ? {} : { [labelName]: labelValues[s]! };
      this.baseLabels.push(base);
      // `le` first, as prom-client renders its own histograms.
      const les: Labels[] = [];
      for (const b of this.bounds) les.push({ le: b, ...base });
      les.push({ le: '+Inf', ...base });
      this.bucketLabels.push(les);
    }
    register(registries, name, help, this);
  }

  /** Counts `value` in series `index` (0 for a histogram without label). Non-finite values are ignored. */
  observe(index: number, value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    const n = bounds.length;
    let b = 0;
    // Bucket b holds values ≤ bounds[b] (Prometheus `le`), n those above every bound.
    while (b < n && value > bounds[b]!) b++;
    this.counts[index * (n + 1) + b]! += 1;
    this.sums[index]! += value;
    this.totals[index]! += 1;
  }

  /** Observations in series `index` so far. */
  count(index: number): number {
    return this.totals[index]!;
  }

  zero(): void {
    this.counts.fill(0);
    this.sums.fill(0);
    this.totals.fill(0);
  }

  snapshot(name: string): MetricSnapshot {
    const values: SampleValue[] = [];
    const n = this.bounds.length;
    const bucketName = `${name}_bucket`;
    for (let s = 0; s < this.baseLabels.length; s++) {
      const les = this.bucketLabels[s]!;
      let cumulative = 0;
      for (let b = 0; b <= n; b++) {
        cumulative += this.counts[s * (n + 1) + b]!;
        values.push({ labels: les[b]!, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: this.baseLabels[s]!, value: this.sums[s]!, metricName: `${name}_sum` });
      values.push({ labels: this.baseLabels[s]!, value: this.totals[s]!, metricName: `${name}_count` });
    }
    return { name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }
}
