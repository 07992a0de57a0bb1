#!/usr/bin/env node
// Flow-table lookup cost (src/stack/flow-table.ts), keyed SipHash-1-3 against the unkeyed mix it
// replaced, and the cost of 5,000 tuples chosen to share one chain under that mix. Uses dist/
// (`npm run build` first). Prints ns per FlowTable.get of a present key; single-threaded, short.
//   node bench/flow-hash.mjs [entries=10000] [lookups=2000000] [keyed|unkeyed|both]
// Run keyed and unkeyed in separate processes for the fair figure: with both hashers in one
// process the table's call to its hasher sees two classes (polymorphic), which costs both.
import { FlowHasher, FlowTable, FlowTuple } from '../dist/stack/flow-table.js';

const N = Number(process.argv[2] ?? 10_000);
const LOOKUPS = Number(process.argv[3] ?? 2_000_000);
const WHICH = process.argv[4] ?? 'both';

function oldMix(h, v) {
  h ^= v;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
/** The unkeyed hash as it was, in the FlowHasher shape (so the same table code runs both). */
class UnkeyedHasher {
  hash(family, s, d, sp, dp) {
    let h = 0x9e3779b1 ^ family;
    h = oldMix(h, s[0] ^ d[0]);
    h = oldMix(h, s[1] ^ Math.imul(d[1], 3));
    h = oldMix(h, s[2] ^ Math.imul(d[2], 5));
    h = oldMix(h, s[3]);
    h = oldMix(h, d[3]);
    return oldMix(h, (sp << 16) | dp) & 0x7fffffff;
  }
  ofKey(k) {
    return this.hash(k.family, k.src, k.dst, k.srcPort, k.dstPort);
  }
  ofTuple(t) {
    return this.hash(t.family, t.remote, t.local, t.remotePort, t.localPort);
  }
}
function inverseOdd(a) {
  let x = a;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(a, x));
  return x;
}
function preimage(y) {
  let x = y ^ (y >>> 16);
  x = Math.imul(x, inverseOdd(0xc2b2ae35));
  x = x ^ (x >>> 13) ^ (x >>> 26);
  return Math.imul(x, inverseOdd(0x85ebca6b)) >>> 0;
}

const APP = 0xc6120001;
const spread = [];
for (let i = 0; i < N; i++) {
  spread.push({ family: 4, src: Uint32Array.of(0, 0, 0, APP), srcPort: 10_000 + (i % 50_000), dst: Uint32Array.of(0, 0, 0, 0xc6130000 + ((i * 7919) % 65_536)), dstPort: 80 + (i % 7) });
}
const colliding = [];
for (let d = 0xc6130000; colliding.length < 5000; d++) {
  let h = 0x9e3779b1 ^ 4;
  for (const w of [0, 0, 0, APP, d]) h = oldMix(h, w);
  const v = (h ^ preimage(0x1234567)) >>> 0;
  if (v >>> 16 === 0 || (v & 0xffff) === 0) continue;
  colliding.push({ family: 4, src: Uint32Array.of(0, 0, 0, APP), srcPort: v >>> 16, dst: Uint32Array.of(0, 0, 0, d), dstPort: v & 0xffff });
}

function measure(name, hasher, keys, lookups) {
  const t = new FlowTable(null, hasher);
  for (const k of keys) t.insert({ flow: new FlowTuple(k), nextInBucket: null, slotInTable: -1 });
  const probe = { family: 4, src: new Uint32Array(4), srcPort: 0, dst: new Uint32Array(4), dstPort: 0 };
  const run = (n) => {
    let found = 0;
    for (let i = 0; i < n; i++) {
      const k = keys[i % keys.length];
      probe.src[3] = k.src[3];
      probe.dst[3] = k.dst[3];
      probe.srcPort = k.srcPort;
      probe.dstPort = k.dstPort;
      if (t.get(probe) !== undefined) found++;
    }
    if (found !== n) throw new Error('lookup missed');
  };
  run(Math.min(lookups, 200_000));
  const samples = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    run(lookups);
    samples.push(Number(process.hrtime.bigint() - t0) / lookups);
  }
  samples.sort((a, b) => a - b);
  console.log(`${name.padEnd(44)} median ${samples[2].toFixed(0).padStart(6)} ns/lookup  (min ${samples[0].toFixed(0)}, longest chain ${t.chainStats().longest})`);
}

if (WHICH !== 'keyed') {
  measure(`unkeyed mix, ${N} spread tuples`, new UnkeyedHasher(), spread, LOOKUPS);
  measure('unkeyed mix, 5,000 chosen tuples', new UnkeyedHasher(), colliding, 20_000);
}
if (WHICH !== 'unkeyed') {
  measure(`keyed SipHash-1-3, ${N} spread tuples`, new FlowHasher(), spread, LOOKUPS);
  measure('keyed SipHash-1-3, 5,000 chosen tuples', new FlowHasher(), colliding, LOOKUPS);
}
