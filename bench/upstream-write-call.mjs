#!/usr/bin/env node
// What one upstream write costs in N-API and system-call overhead alone, without the kernel's
// TCP work: the addon's upstreamWritev of a one-element array against upstreamWrite of the Buffer
// itself, both on fd -1 (the call fails with EBADF at the fd lookup, so only the crossing and
// the system call's entry and exit are left), and a read(2) of the same kind for scale. Process
// CPU (process.cpuUsage) per call, rounds taking turns.
//
//   node bench/upstream-write-call.mjs [--calls 2000000] [--rounds 5]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({ options: { calls: { type: 'string', default: '2000000' }, rounds: { type: 'string', default: '5' } } });
const N = Number(opt.calls);
const here = path.dirname(fileURLToPath(import.meta.url));
const addon = createRequire(import.meta.url)(path.join(here, '..', 'build', 'Release', 'synfin.node'));
const buf = Buffer.alloc(64);
const arr = [buf];
const variants = {
  'upstreamWritev(fd, [buf], 0, 1)': () => addon.upstreamWritev(-1, arr, 0, 1),
  'upstreamWrite(fd, buf)': () => addon.upstreamWrite(-1, buf),
  'upstreamRead(fd, buf, 0, 64)': () => addon.upstreamRead(-1, buf, 0, 64),
};
const samples = {};
for (let r = 0; r < Number(opt.rounds); r++) {
  for (const [name, f] of Object.entries(variants)) {
    let s = 0;
    const t = process.cpuUsage();
    for (let i = 0; i < N; i++) s += f();
    const u = process.cpuUsage(t);
    if (s === 0) throw new Error('unexpected');
    (samples[name] ??= []).push(((u.user + u.system) * 1000) / N);
  }
}
for (const [name, xs] of Object.entries(samples)) {
  const sorted = [...xs].sort((a, b) => a - b);
  console.log(`${name}: ${sorted[sorted.length >> 1].toFixed(0)} ns per call (median of ${xs.length}; ${xs.map((x) => x.toFixed(0)).join(' ')})`);
}
