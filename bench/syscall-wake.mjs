#!/usr/bin/env node
// What a system call costs the JavaScript that runs after it (issue 24): on some guests (this
// machine's, a PVM guest) a system call leaves the TLB or caches cold, so the JavaScript between
// two calls costs more than the same JavaScript run straight through. A loop touches W objects
// picked across a heap of N (a few property reads and writes each, as a connection's handlers
// touch their objects), with and without a trivial system call before each pass (getsockopt on
// fd -1 through synfin's addon: EBADF at the fd lookup). Prints, per W, ns per pass for the
// JavaScript alone, the call alone, both, and the extra: what the call cost the JavaScript after it.
//
//   node bench/syscall-wake.mjs [--objects 4000] [--passes 200000] [--rounds 3]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    objects: { type: 'string', default: '4000' },
    passes: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const addon = { ...createRequire(import.meta.url)(path.join(here, '..', 'build', 'Release', 'synfin.node')) };
const syscall = addon.upstreamSocketError;
if (syscall(-1) !== 9) throw new Error('getsockopt(-1) did not fail with EBADF');

const N = Number(opt.objects);
const objects = [];
for (let i = 0; i < N; i++) objects.push({ a: i, b: i * 2, c: null, d: [i], e: `x${i}` });
let at = 0;
let sink = 0;
/** Touches `w` objects, each a stride away from the last (spread over the heap, as connections are). */
function touch(w) {
  for (let i = 0; i < w; i++) {
    at = (at + 997) % N;
    const o = objects[at];
    o.a += o.b;
    o.c = o.d;
    sink += o.e.length + o.d[0];
  }
}
function nsPerPass(passes, pass) {
  for (let i = 0; i < passes / 10; i++) pass();
  const t = process.hrtime.bigint();
  for (let i = 0; i < passes; i++) pass();
  return Number(process.hrtime.bigint() - t) / passes;
}
const PASSES = Number(opt.passes);
for (let r = 0; r < Number(opt.rounds); r++) {
  for (const w of [10, 50, 200]) {
    const js = nsPerPass(PASSES, () => touch(w));
    const call = nsPerPass(PASSES, () => syscall(-1));
    const both = nsPerPass(PASSES, () => {
      syscall(-1);
      touch(w);
    });
    console.log(`objects ${N}, ${w} touched per pass: JavaScript ${js.toFixed(0)} ns, system call ${call.toFixed(0)} ns, both ${both.toFixed(0)} ns, extra ${(both - js - call).toFixed(0)} ns`);
  }
}
if (sink === 0) console.log('');
