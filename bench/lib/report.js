// Machine description, the issue's targets, and the table / JSON / Markdown output.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  return {
    nproc: os.cpus().length,
    cpu,
    kernel: os.release(),
    node: process.version,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
  };
}

export function loadAverage() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

const by = (rows, id) => rows.find((r) => r.id === id);
const med = (r, path) => r?.paths[path]?.median;
const cpuMed = (r, path) => r?.paths[path]?.cpuUsPerUnit?.median;
const ok = (x) => x !== null && x !== undefined && Number.isFinite(x);
/** Ratio of the medians of `a` on path pa to `b` on path pb. */
const ratioOf = (r, pa, pb) => (ok(med(r, pa)) && ok(med(r, pb)) && med(r, pb) !== 0 ? med(r, pa) / med(r, pb) : null);

/** Whether row `r` has samples on every one of `paths` (a subset of the paths may have been run: --paths). */
const has = (r, ...paths) => r !== undefined && paths.every((p) => (r.paths[p]?.n ?? 0) > 0);

/**
 * One judgement over several rows: null (not measured) when none of them has the paths it needs,
 * not met when some have and others not. test(r) → { x, met }.
 */
function all(rows, ids, paths, test, show) {
  const rs = ids.map((id) => by(rows, id));
  if (rs.every((r) => !has(r, ...paths))) return null;
  const values = rs.map((r) => (has(r, ...paths) ? test(r) : null));
  return { met: values.every((v) => v !== null && v.met), value: values.map((v, i) => (v === null ? `${ids[i]} not measured` : show(v.x))).join(' / ') };
}

/**
 * The targets, each judged on the medians of this run's rounds: met, not met, or not measured.
 * `issue` says where the target comes from: the last round (no regression allowed) or issue 24.
 */
export const TARGETS = [
  // ── the last round's, none may regress ──
  {
    id: 'bulk_large_mtu',
    issue: 'last round',
    text: 'bulk throughput ≥ 0.25 of the kernel’s with the large MTU (each direction)',
    judge: (rows) => all(rows, ['bulk_mtu65000_up', 'bulk_mtu65000_down'], ['synfin', 'kernel'], (r) => ({ x: ratioOf(r, 'synfin', 'kernel'), met: ratioOf(r, 'synfin', 'kernel') >= 0.25 }), fmtRatio),
  },
  {
    id: 'conn_rate',
    issue: 'last round',
    text: '≥ 5,000 short connections/s (client closes first) with port reuse and no SYN retransmissions',
    judge(rows) {
      const r = by(rows, 'conn_rate');
      const syn = by(rows, 'conn_syn_retrans');
      if (!has(r, 'synfin') || !has(syn, 'synfin')) return null;
      const retrans = (syn.paths.synfin?.samples ?? []).reduce((a, x) => a + x, 0);
      const lost = (r.details.synfin ?? []).reduce((a, x) => a + (x.lost ?? 0), 0);
      return { met: med(r, 'synfin') >= 5000 && retrans === 0 && lost === 0, value: `${fmt(med(r, 'synfin'))}/s, ${retrans} SYN retransmissions` };
    },
  },
  {
    id: 'http_keepalive',
    issue: 'last round',
    text: 'keep-alive HTTP ≥ 0.5 of the kernel’s',
    judge: (rows) => all(rows, ['http_keepalive'], ['synfin', 'kernel'], (r) => ({ x: ratioOf(r, 'synfin', 'kernel'), met: ratioOf(r, 'synfin', 'kernel') >= 0.5 }), fmtRatio),
  },
  {
    id: 'connect_p50',
    issue: 'last round',
    text: 'connect p50 ≤ 150 µs (one connection at a time)',
    judge: (rows) => all(rows, ['conn_p50_seq'], ['synfin'], (r) => ({ x: med(r, 'synfin'), met: med(r, 'synfin') <= 150 }), (x) => `${fmt(x)} µs`),
  },
  {
    id: 'idle_memory',
    issue: 'last round',
    text: '≤ 20 KB of synfin memory per idle connection',
    judge: (rows) => all(rows, ['idle_rss'], ['synfin'], (r) => ({ x: med(r, 'synfin'), met: med(r, 'synfin') * 1024 <= 20_000 }), (x) => `${fmt(x * 1.024)} KB`),
  },
  {
    id: 'api_load',
    issue: 'last round',
    text: 'keep-alive HTTP with 10,000 held, the API walked in a loop and 16 stalled event readers ≥ 0.9× without them',
    judge: (rows) => all(rows, ['http_keepalive_api'], ['synfin', 'synfin-alone'], (r) => ({ x: ratioOf(r, 'synfin', 'synfin-alone'), met: ratioOf(r, 'synfin', 'synfin-alone') >= 0.9 }), fmtRatio),
  },
  {
    id: 'no_loss',
    issue: 'last round',
    text: 'no connection lost in any workload',
    judge(rows, failures) {
      if (rows.length === 0) return null;
      const lost = rows.reduce((a, r) => a + (r.lost ?? 0), 0);
      const failed = failures.length > 0 ? `, ${failures.length} workload run(s) failed: ${failures.map((f) => `${f.workload} (round ${f.round + 1})`).join(', ')}` : '';
      return { met: lost === 0 && failures.length === 0, value: `${lost} lost${failed}` };
    },
  },
  // ── issue 24 ──
  {
    id: 'short_close',
    issue: 'issue 24',
    text: 'short connections/s, server closes first, 50 in flight ≥ 0.8× haproxy',
    judge: (rows) => all(rows, ['short_close'], ['synfin', 'haproxy'], (r) => ({ x: ratioOf(r, 'synfin', 'haproxy'), met: ratioOf(r, 'synfin', 'haproxy') >= 0.8 }), (x) => `${fmtRatio(x)}× haproxy`),
  },
  {
    id: 'http_close',
    issue: 'issue 24',
    text: 'Connection: close HTTP ≥ 0.8× haproxy',
    judge: (rows) => all(rows, ['http_close'], ['synfin', 'haproxy'], (r) => ({ x: ratioOf(r, 'synfin', 'haproxy'), met: ratioOf(r, 'synfin', 'haproxy') >= 0.8 }), (x) => `${fmtRatio(x)}× haproxy`),
  },
  {
    id: 'http_keepalive_haproxy',
    issue: 'issue 24',
    text: 'keep-alive HTTP ≥ 1.2× haproxy',
    judge: (rows) => all(rows, ['http_keepalive'], ['synfin', 'haproxy'], (r) => ({ x: ratioOf(r, 'synfin', 'haproxy'), met: ratioOf(r, 'synfin', 'haproxy') >= 1.2 }), (x) => `${fmtRatio(x)}× haproxy`),
  },
  {
    id: 'reqresp',
    issue: 'issue 24',
    text: 'request/response depth 1 and 16, 50 connections ≥ 1.0× haproxy',
    judge: (rows) => all(rows, ['reqresp_d1', 'reqresp_d16'], ['synfin', 'haproxy'], (r) => ({ x: ratioOf(r, 'synfin', 'haproxy'), met: ratioOf(r, 'synfin', 'haproxy') >= 1.0 }), (x) => `${fmtRatio(x)}×`),
  },
  {
    id: 'first_byte',
    issue: 'issue 24',
    text: 'first byte p50 ≤ 1.5× and p99 ≤ 2× haproxy’s, one connection at a time',
    judge(rows) {
      const a = by(rows, 'fb_p50_seq');
      const b = by(rows, 'fb_p99_seq');
      if (!has(a, 'synfin', 'haproxy') || !has(b, 'synfin', 'haproxy')) return null;
      const x = ratioOf(a, 'synfin', 'haproxy');
      const y = ratioOf(b, 'synfin', 'haproxy');
      return { met: x !== null && y !== null && x <= 1.5 && y <= 2, value: `${fmtRatio(x)}× / ${fmtRatio(y)}× (${fmt(med(a, 'synfin'))} / ${fmt(med(b, 'synfin'))} µs)` };
    },
  },
  {
    id: 'connect_seq',
    issue: 'issue 24',
    text: 'connect p50 ≤ 3× and p99 ≤ 5× the kernel’s, one connection at a time',
    judge(rows) {
      const a = by(rows, 'conn_p50_seq');
      const b = by(rows, 'conn_p99_seq');
      if (!has(a, 'synfin', 'kernel') || !has(b, 'synfin', 'kernel')) return null;
      const x = ratioOf(a, 'synfin', 'kernel');
      const y = ratioOf(b, 'synfin', 'kernel');
      return { met: x !== null && y !== null && x <= 3 && y <= 5, value: `${fmtRatio(x)}× / ${fmtRatio(y)}× (${fmt(med(a, 'synfin'))} / ${fmt(med(b, 'synfin'))} µs)` };
    },
  },
  {
    id: 'cpu',
    issue: 'issue 24',
    text: 'synfin CPU ≤ 12 µs per keep-alive request and ≤ 70 µs per short connection (server closes first)',
    judge(rows) {
      const a = by(rows, 'http_keepalive');
      const b = by(rows, 'short_close');
      if (!has(a, 'synfin') && !has(b, 'synfin')) return null;
      const x = cpuMed(a, 'synfin');
      const y = cpuMed(b, 'synfin');
      return { met: ok(x) && ok(y) && x <= 12 && y <= 70, value: `${ok(x) ? fmt(x) : '—'} µs / ${ok(y) ? fmt(y) : '—'} µs` };
    },
  },
  {
    id: 'idle_memory_24',
    issue: 'issue 24',
    text: 'idle connection ≤ 4 KiB; RSS back within 16 MiB of the baseline 30 s after 10,000 close',
    judge(rows) {
      const a = by(rows, 'idle_rss');
      const b = by(rows, 'idle_rss_after');
      if (!has(a, 'synfin') || !has(b, 'synfin')) return null;
      return { met: med(a, 'synfin') <= 4 && med(b, 'synfin') <= 16, value: `${fmt(med(a, 'synfin'))} KiB / ${med(b, 'synfin') >= 0 ? '+' : ''}${fmt(med(b, 'synfin'))} MiB` };
    },
  },
  {
    id: 'bulk',
    issue: 'issue 24',
    text: 'bulk MTU 1500 and 65000, both directions ≥ 0.7× the kernel',
    judge: (rows) => all(rows, ['bulk_mtu1500_up', 'bulk_mtu1500_down', 'bulk_mtu65000_up', 'bulk_mtu65000_down'], ['synfin', 'kernel'], (r) => ({ x: ratioOf(r, 'synfin', 'kernel'), met: ratioOf(r, 'synfin', 'kernel') >= 0.7 }), fmtRatio),
  },
];

export function judge(rows, failures = []) {
  return TARGETS.map((t) => {
    const v = t.judge(rows, failures);
    return { id: t.id, issue: t.issue, target: t.text, status: v === null ? 'not measured' : v.met ? 'met' : 'NOT met', value: v?.value ?? '' };
  });
}

export function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  if (Math.abs(x) >= 1 || x === 0) return x.toFixed(2);
  return x.toPrecision(2);
}

function fmtRatio(r) {
  return r === null || r === undefined || Number.isNaN(r) ? '—' : r.toFixed(2);
}

function pad(s, n) {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** "median (min–max)" of one path of a row, or — when the path was not measured. */
function cell(r, p) {
  const x = r.paths[p];
  if (x === undefined || x.n === 0) return '—';
  return x.n > 1 ? `${fmt(x.median)} (${fmt(x.min)}–${fmt(x.max)})` : fmt(x.median);
}

function cpuCell(r, p) {
  const c = r.paths[p]?.cpuUsPerUnit;
  if (c === null || c === undefined) return '—';
  return c.n > 1 ? `${fmt(c.median)} (${fmt(c.min)}–${fmt(c.max)})` : fmt(c.median);
}

function loopCell(r) {
  const l = r.paths.synfin?.loopMs;
  return l === null || l === undefined ? '—' : `${fmt(l.p99)} / ${fmt(l.max)}`;
}

const HEAD = ['workload', 'unit', 'kernel', 'haproxy', 'synfin', 'synfin/kernel', 'synfin/haproxy', 'synfin CPU µs/unit', 'haproxy CPU µs/unit', 'synfin loop delay p99 / max ms', 'lost'];

function cells(r) {
  // The API row compares synfin with and without the API load: its "haproxy" column shows synfin alone.
  const api = r.paths['synfin-alone'] !== undefined;
  return [
    r.workload + (api ? ' (haproxy column: synfin without the API load)' : ''),
    r.unit + (r.cpuUnit ? ` (CPU ${r.cpuUnit})` : ''),
    cell(r, 'kernel'),
    api ? cell(r, 'synfin-alone') : cell(r, 'haproxy'),
    cell(r, 'synfin'),
    fmtRatio(r.ratioKernel),
    fmtRatio(api ? (r.paths['synfin-alone'].median ? r.paths.synfin.median / r.paths['synfin-alone'].median : null) : r.ratioHaproxy),
    cpuCell(r, 'synfin'),
    cpuCell(r, 'haproxy'),
    loopCell(r),
    String(r.lost),
  ];
}

/** Plain-text table for the terminal: medians, (min–max) over the rounds. */
export function textTable(rows) {
  const body = rows.map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cs) => cs.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : pad(c, widths[i]))).join('  ');
  return [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function markdownTable(rows) {
  const out = [`| ${HEAD.join(' | ')} |`, `|---|---|${'--:|'.repeat(HEAD.length - 2)}`];
  for (const r of rows) out.push(`| ${cells(r).join(' | ')} |`);
  return out.join('\n');
}

/**
 * synfin/haproxy and synfin/kernel round by round, and the median of those ratios, for the rows
 * measured on both paths in more than one round: how much of a ratio of medians is the rounds'
 * spread (see summarize's paired()).
 */
export function markdownPaired(rows) {
  const out = ['| workload | synfin/haproxy by round | median | synfin/kernel by round | median |', '|---|---|--:|---|--:|'];
  const list = (p) => (p === null ? '—' : p.byRound.map(fmtRatio).join(', '));
  const mid = (p) => (p === null ? '—' : fmtRatio(p.median));
  let any = false;
  for (const r of rows) {
    if (r.paths['synfin-alone'] !== undefined) continue; // the API row compares synfin with itself
    if (r.pairedHaproxy == null && r.pairedKernel == null) continue;
    any = true;
    out.push(`| ${r.workload} | ${list(r.pairedHaproxy ?? null)} | ${mid(r.pairedHaproxy ?? null)} | ${list(r.pairedKernel ?? null)} | ${mid(r.pairedKernel ?? null)} |`);
  }
  return any ? out.join('\n') : '';
}

export function markdownTargets(targets) {
  const out = ['| target | from | this run (medians) | status |', '|---|---|---|---|'];
  for (const t of targets) out.push(`| ${t.target} | ${t.issue} | ${t.value} | ${t.status} |`);
  return out.join('\n');
}

export function writeJson(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}
