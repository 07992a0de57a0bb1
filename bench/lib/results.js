// Samples of every row, path by path and round by round, and their summary: the median with its
// spread (min–max over the rounds) per path, the ratios synfin/kernel and synfin/haproxy of the
// medians (and round by round, paired), the relays' CPU per unit and synfin's event-loop delay.

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function spread(xs) {
  const s = xs.filter((x) => Number.isFinite(x));
  return { median: median(s), min: s.length ? Math.min(...s) : NaN, max: s.length ? Math.max(...s) : NaN, n: s.length, samples: xs };
}

export class Results {
  constructor() {
    /** id → { id, workload, unit, better, cpuUnit, note, samples: { path: [sample] } } */
    this.byId = new Map();
  }

  /**
   * One sample of row `id` on `path`. meta: { workload, unit, better: 'higher'|'lower', cpuUnit, note }.
   * sample: { round, value, lost, cpuUsPerUnit (relay CPU µs per unit of work), loop (ms), details }.
   */
  add(id, meta, path, sample) {
    let r = this.byId.get(id);
    if (r === undefined) {
      r = { id, ...meta, samples: {} };
      this.byId.set(id, r);
    }
    (r.samples[path] ??= []).push(sample);
  }

  rows() {
    return [...this.byId.values()].map((r) => summarize(r));
  }
}

/**
 * synfin against another path round by round: each round measures the paths of a workload one
 * after the other, so a round's ratio compares measurements minutes apart, where the medians'
 * ratio may compare a fast round of one path with a slow round of the other. Rounds where either
 * path has no finite value are left out. null with fewer than two rounds in common. Reported
 * beside the ratio of the medians (which the targets are judged on), not instead of it.
 */
function paired(a, b) {
  if (a === undefined || b === undefined) return null;
  const other = new Map(b.map((s) => [s.round, s.value]));
  const byRound = [];
  for (const s of a) {
    const y = other.get(s.round);
    if (Number.isFinite(s.value) && Number.isFinite(y) && y !== 0) byRound.push({ round: s.round, ratio: s.value / y });
  }
  if (byRound.length < 2) return null;
  byRound.sort((x, y) => x.round - y.round);
  return { byRound: byRound.map((x) => x.ratio), median: median(byRound.map((x) => x.ratio)) };
}

export function summarize(r) {
  const paths = {};
  let lost = 0;
  for (const [p, ss] of Object.entries(r.samples)) {
    const cpu = ss.map((s) => s.cpuUsPerUnit ?? NaN);
    const loops = ss.map((s) => s.loop).filter((l) => l !== null && l !== undefined);
    paths[p] = {
      ...spread(ss.map((s) => s.value)),
      cpuUsPerUnit: cpu.some(Number.isFinite) ? spread(cpu) : null,
      // Event-loop delay over the rounds: the median of each round's p99 and the largest delay seen.
      loopMs: loops.length ? { p99: median(loops.map((l) => l.p99)), max: Math.max(...loops.map((l) => l.max)), mean: median(loops.map((l) => l.mean)) } : null,
    };
    lost += ss.reduce((a, s) => a + (s.lost ?? 0), 0);
  }
  const ratio = (a, b) => (a !== undefined && b !== undefined && Number.isFinite(a.median) && Number.isFinite(b.median) && b.median !== 0 ? a.median / b.median : null);
  return {
    id: r.id,
    workload: r.workload,
    unit: r.unit,
    better: r.better,
    cpuUnit: r.cpuUnit ?? null,
    note: r.note ?? null,
    paths,
    ratioKernel: ratio(paths.synfin, paths.kernel),
    ratioHaproxy: ratio(paths.synfin, paths.haproxy),
    pairedKernel: paired(r.samples.synfin, r.samples.kernel),
    pairedHaproxy: paired(r.samples.synfin, r.samples.haproxy),
    lost,
    details: Object.fromEntries(Object.entries(r.samples).map(([p, ss]) => [p, ss.map((s) => ({ round: s.round, value: s.value, lost: s.lost, cpuUsPerUnit: s.cpuUsPerUnit, loop: s.loop, ...(s.details ?? {}) }))])),
  };
}
