// Machine description, the targets, and the table / JSON / Markdown output.
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

/** The targets, each judged on the rows of this run: met, not met, or not measured. */
export const TARGETS = [
  {
    id: 'bulk_large_mtu',
    text: 'bulk throughput ≥ 0.25 of the kernel’s with the large MTU (each direction)',
    judge(rows) {
      const rs = [by(rows, 'bulk_mtu65000_up'), by(rows, 'bulk_mtu65000_down')].filter(Boolean);
      if (rs.length === 0) return null;
      return { met: rs.every((r) => r.ratio !== null && r.ratio >= 0.25), value: rs.map((r) => fmtRatio(r.ratio)).join(' / ') };
    },
  },
  {
    id: 'conn_rate',
    text: '≥ 5,000 short connections/s with port reuse and no SYN retransmissions',
    judge(rows) {
      const r = by(rows, 'conn_rate');
      const syn = by(rows, 'conn_syn_retrans');
      if (r === undefined || syn === undefined) return null;
      return { met: r.synfin >= 5000 && syn.synfin === 0 && r.lost === 0, value: `${fmt(r.synfin)}/s, ${syn.synfin} SYN retransmissions` };
    },
  },
  {
    id: 'http_keepalive',
    text: 'keep-alive HTTP ≥ 0.5 of the kernel’s',
    judge(rows) {
      const r = by(rows, 'http_keepalive');
      if (r === undefined) return null;
      return { met: r.ratio !== null && r.ratio >= 0.5, value: fmtRatio(r.ratio) };
    },
  },
  {
    id: 'connect_p50',
    text: 'connect p50 ≤ 150 µs (one connection at a time)',
    judge(rows) {
      const r = by(rows, 'conn_p50_seq');
      if (r === undefined) return null;
      return { met: r.synfin <= 150, value: `${fmt(r.synfin)} µs` };
    },
  },
  {
    id: 'idle_memory',
    text: '≤ 20 KB of synfin memory per idle connection',
    judge(rows) {
      const r = by(rows, 'idle_rss');
      if (r === undefined) return null;
      return { met: r.synfin * 1024 <= 20_000 && r.lost === 0, value: `${fmt(r.synfin * 1.024)} KB` };
    },
  },
  {
    id: 'api_load',
    text: 'keep-alive HTTP with 10,000 held, the API walked in a loop and 16 stalled event readers ≥ 0.9× without them',
    judge(rows) {
      const r = by(rows, 'http_keepalive_api');
      if (r === undefined) return null;
      return { met: r.ratio !== null && r.ratio >= 0.9, value: fmtRatio(r.ratio) };
    },
  },
  {
    id: 'no_loss',
    text: 'no connection lost in any workload',
    judge(rows, failures) {
      if (rows.length === 0) return null;
      const lost = rows.reduce((a, r) => a + (r.lost ?? 0), 0);
      const failed = failures.length > 0 ? `, ${failures.length} workload(s) failed: ${failures.map((f) => f.workload).join(', ')}` : '';
      return { met: lost === 0 && failures.length === 0, value: `${lost} lost${failed}` };
    },
  },
];

export function judge(rows, failures = []) {
  return TARGETS.map((t) => {
    const v = t.judge(rows, failures);
    return { id: t.id, target: t.text, status: v === null ? 'not measured' : v.met ? 'met' : 'NOT met', value: v?.value ?? '' };
  });
}

export function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function fmtRatio(r) {
  return r === null || r === undefined || Number.isNaN(r) ? '—' : r.toFixed(2);
}

function pad(s, n) {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Plain-text table for the terminal. */
export function textTable(rows) {
  const head = ['workload', 'unit', 'synfin', 'kernel', 'synfin/kernel', 'lost'];
  const body = rows.map((r) => [r.workload, r.unit, fmt(r.synfin), fmt(r.kernel), fmtRatio(r.ratio), String(r.lost)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : pad(c, widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function markdownTable(rows) {
  const out = ['| workload | unit | synfin | kernel | synfin/kernel | lost |', '|---|---|--:|--:|--:|--:|'];
  for (const r of rows) out.push(`| ${r.workload} | ${r.unit} | ${fmt(r.synfin)} | ${fmt(r.kernel)} | ${fmtRatio(r.ratio)} | ${r.lost} |`);
  return out.join('\n');
}

export function markdownTargets(targets) {
  const out = ['| target (issue) | this run | status |', '|---|---|---|'];
  for (const t of targets) out.push(`| ${t.target} | ${t.value} | ${t.status} |`);
  return out.join('\n');
}

export function writeJson(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}
