#!/usr/bin/env node
// The tables of BENCHMARKS.md "The floor of a small request" from bench/request-floor.mjs results:
// system calls and packets per request, and the perf categories as µs per request. The
// categories that only a loaded machine has (preemption, other tools' syscall tracepoints) are
// left out and the rest scaled to 100 %; µs are those shares times a CPU per request given per
// workload and relay (--cpu, e.g. the quiet fair run's: http:haproxy=16.0,http:synfin=21.6), or
// else the one measured in the same run.
//
//   node bench/request-floor-table.mjs bench/results/request-floor-*/floor.json [--cpu http:haproxy=16.0,...]
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt, positionals } = parseArgs({ options: { cpu: { type: 'string' } }, allowPositionals: true });
const given = {};
for (const kv of (opt.cpu ?? '').split(',').filter(Boolean)) {
  const [k, v] = kv.split('=');
  given[k.replace(':', '/')] = Number(v);
}
const rows = {};
for (const f of positionals) Object.assign(rows, JSON.parse(fs.readFileSync(f, 'utf8')).rows);

const LOADED = /^(preempted|syscall tracepoints)/;
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2));

process.stdout.write('| workload / relay | CPU µs/req (this run) | system calls/req | by call | packets/req app leg (data + pure ACK) | packets/req upstream leg |\n|---|--:|--:|---|--:|--:|\n');
for (const [key, r] of Object.entries(rows)) {
  const sc = r.syscalls;
  const by = sc ? Object.entries(sc.perReq).filter(([, v]) => v >= 0.01).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') : '—';
  const leg = (l) => (l ? `${f2(l.toServerData + l.toClientData)} + ${f2((l.toServerAck ?? 0) + (l.toClientAck ?? 0))}` : '—');
  process.stdout.write(`| ${key} | ${f2(r.cpu?.cpuUsPerReq)} | ${f2(sc?.total)} | ${by} | ${leg(r.packets?.legs.client)} | ${leg(r.packets?.legs.upstream)} |\n`);
}

const withPerf = Object.entries(rows).filter(([, r]) => r.perf);
const cats = new Set();
const shares = {};
for (const [key, r] of withPerf) {
  const p = r.perf.categories.percent;
  const kept = Object.entries(p).filter(([k]) => !LOADED.test(k));
  const sum = kept.reduce((a, [, v]) => a + v, 0);
  shares[key] = { loaded: 100 - sum, cats: Object.fromEntries(kept.map(([k, v]) => [k, v / sum])) };
  for (const [k] of kept) cats.add(k);
}
const keys = withPerf.map(([k]) => k);
const total = (k) => given[k] ?? rows[k].cpu.cpuUsPerReq;
process.stdout.write(`\n| µs per request | ${keys.join(' | ')} |\n|---|${keys.map(() => '--:').join('|')}|\n`);
const order = [...cats].sort((a, b) => keys.reduce((s, k) => s + (shares[k].cats[b] ?? 0), 0) - keys.reduce((s, k) => s + (shares[k].cats[a] ?? 0), 0));
for (const c of order) {
  process.stdout.write(`| ${c} | ${keys.map((k) => f2((shares[k].cats[c] ?? 0) * total(k))).join(' | ')} |\n`);
}
process.stdout.write(`| **total** (CPU µs/req it is scaled to) | ${keys.map((k) => `**${f2(total(k))}**`).join(' | ')} |\n`);
process.stdout.write(`| (left out: preemption and other tools' tracepoints, % of samples) | ${keys.map((k) => f2(shares[k].loaded)).join(' | ')} |\n`);
