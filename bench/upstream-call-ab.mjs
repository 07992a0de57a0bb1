#!/usr/bin/env node
// The N-API glue of one upstream read and one upstream write, two addon builds in one process
// (issue 24): each call on fd -1 (it fails with EBADF at the fd lookup, so what is left is the
// crossing into the addon, the argument checks, the result and the system call's entry and exit),
// called as src/proxy/upstream.ts calls it in each build. Process CPU (process.cpuUsage) per call,
// the variants taking turns round by round.
//
//   node bench/upstream-call-ab.mjs --base DIR [--head DIR] [--calls 2000000] [--rounds 7]
//
// DIR is a tree with build/Release/synfin.node (the head defaults to this checkout). The base is
// called as before this change: through the addon's own exports object (V8 keeps it in dictionary
// mode: a LoadIC per call), upstreamRead with the Buffer and its bounds. The head as now: through
// a copy with fast properties (src/native/addon.ts), upstreamReadBound with only the fd.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    base: { type: 'string' },
    head: { type: 'string', default: path.join(here, '..') },
    calls: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '7' },
  },
});
if (opt.base === undefined) {
  process.stderr.write('usage: node bench/upstream-call-ab.mjs --base DIR [--head DIR] [--calls N] [--rounds N]\n');
  process.exit(2);
}
const req = createRequire(import.meta.url);
const load = (dir) => req(path.resolve(dir, 'build', 'Release', 'synfin.node'));
const base = load(opt.base);
const head = { ...load(opt.head) };
const N = Number(opt.calls);
const buf = Buffer.allocUnsafe(64 * 1024);
const small = Buffer.alloc(64);
if (typeof head.upstreamBindReadBuffer === 'function') head.upstreamBindReadBuffer(buf);
const variants = {
  'read, base: exports.upstreamRead(fd, buf, 0, len)': () => base.upstreamRead(-1, buf, 0, buf.length),
  'read, head: copy.upstreamReadBound(fd)': () => head.upstreamReadBound(-1),
  'write, base: exports.upstreamWrite(fd, buf, false)': () => base.upstreamWrite(-1, small, false),
  'write, head: copy.upstreamWrite(fd, buf, false)': () => head.upstreamWrite(-1, small, false),
};
const samples = {};
const names = Object.keys(variants);
for (let r = 0; r < Number(opt.rounds); r++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + r) % names.length];
    const f = variants[name];
    let s = 0;
    const t = process.cpuUsage();
    for (let i = 0; i < N; i++) s += f();
    const u = process.cpuUsage(t);
    if (s >= 0) throw new Error(`${name}: expected -EBADF from every call`);
    (samples[name] ??= []).push(((u.user + u.system) * 1000) / N);
  }
}
for (const name of names) {
  const xs = samples[name];
  const sorted = [...xs].sort((a, b) => a - b);
  console.log(`${name}: ${sorted[sorted.length >> 1].toFixed(0)} ns per call (median of ${xs.length}; ${xs.map((x) => x.toFixed(0)).join(' ')})`);
}
