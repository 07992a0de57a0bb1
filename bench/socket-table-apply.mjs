// The kernel-socket table's work per short connection (issue 24): SocketTable.apply with one watch and
// one release per connection, 50 live, 32 connections per call, up to 200,000 closed tuples
// remembered as synfin does; 9 rounds of 200,000 connections, CPU per connection.
//
//   node bench/socket-table-apply.mjs [path/to/synfin.node]
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const a = require(process.argv[2] ?? new URL('../build/Release/synfin.node', import.meta.url).pathname);
const t = new a.SocketTable(300000, 200000, false);
const ops = new Float64Array(64 * 14);
let id = 1, port = 0;
const N = 200000; // connections per round
const res = [];
for (let round = 0; round < 9; round++) {
  const c0 = process.cpuUsage();
  let q = 0;
  const live = [];
  for (let c = 0; c < N; c++) {
    const o = q++ * 14;
    ops[o] = 1; ops[o + 1] = id; ops[o + 2] = 0; ops[o + 3] = 4;
    ops[o + 4] = 0; ops[o + 5] = 0; ops[o + 6] = 0; ops[o + 7] = 0x0a000001; ops[o + 8] = 1024 + (port % 60000);
    ops[o + 9] = 0; ops[o + 10] = 0; ops[o + 11] = 0; ops[o + 12] = 0x0a000002 + Math.floor(port++ / 60000); ops[o + 13] = 80; // every tuple new: past 200,000 each connection forgets one
    live.push(id++);
    if (q === 64) { t.apply(ops, q); q = 0; }
    if (live.length > 50) {
      const r = q++ * 14; ops[r] = 2; ops[r + 1] = live.shift(); ops[r + 2] = round * 1000 + c / 1000;
      if (q === 64) { t.apply(ops, q); q = 0; }
    }
  }
  t.apply(ops, q);
  const c = process.cpuUsage(c0);
  res.push((c.user + c.system) * 1000 / N);
}
console.log('ns per connection (watch + release), rounds:', res.map((x) => x.toFixed(0)).join(' '), 'median', [...res].sort((x, y) => x - y)[4].toFixed(0), 'watched', t.watched);
