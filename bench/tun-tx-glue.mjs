#!/usr/bin/env node
// The addon's own cost of one TUN flush call (issue 24): writeBatch with the ten ring arrays
// passed and looked up again (the flush before bindTx) against writeBound(start, count) over the
// ring the device was given once. count 0: no packet, no system call, only the N-API call and its
// arguments. Both on one device in one process, alternating, 1,000,000 calls per measure, process
// CPU per call (survives a loaded machine better than wall time); medians of 7.
//
//   sudo node bench/tun-tx-glue.mjs [DIST]     (root: it opens a TUN device, closed at the end)
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = path.resolve(process.argv[2] ?? 'dist');
const { Tun } = await import(pathToFileURL(path.join(dist, 'tun/index.js')).href);
const tun = Tun.open({ name: `sftg${process.pid % 10000}` });
try {
  const t = tun;
  const d = t.device;
  const args = [t.txBuffer, t.txOffsets, t.txLengths, 0, 0, t.txResult, t.txViews, t.txViewOffsets, t.txViewLengths, t.txViewCounts];
  const N = 1_000_000;
  const timed = (f) => {
    const c = process.cpuUsage();
    f();
    const u = process.cpuUsage(c);
    return ((u.user + u.system) / N) * 1000;
  };
  const batch = () => {
    for (let i = 0; i < N; i++) d.writeBatch(...args);
  };
  const bound = () => {
    for (let i = 0; i < N; i++) d.writeBound(0, 0);
  };
  const res = { writeBatch: [], writeBound: [] };
  for (let r = 0; r < 7; r++) {
    res.writeBatch.push(timed(batch));
    res.writeBound.push(timed(bound));
  }
  const med = (x) => x.slice().sort((p, q) => p - q)[x.length >> 1];
  for (const [k, v] of Object.entries(res)) console.log(`${k}: ${med(v).toFixed(0)} ns CPU per call (median of 7: ${v.map((x) => x.toFixed(0)).join(' ')})`);
} finally {
  tun.close();
}
