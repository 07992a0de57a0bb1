#!/usr/bin/env node
// synfin's CPU per short connection (the shortconn workload: the server writes 6 bytes and closes,
// 50 in flight, 5 s per round) under different node/V8 command-line flags or builds, the variants
// taking turns round by round (rotating order) on one topology; all of the process's threads
// counted (/proc/PID/task/*/stat). A variant is 'DIST [NODE ARGS...]' (one argument, quoted).
//
//   sudo node bench/node-flags-ab.mjs ROUNDS 'dist' 'dist --max-inlined-bytecode-size-cumulative=300' ...
import fs from 'node:fs';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { run } from './lib/proc.js';
import { tool } from './lib/tools.js';
const [rounds, ...variants] = process.argv.slice(2);
if (!(Number(rounds) >= 1) || variants.length < 1) {
  process.stderr.write("usage: node bench/node-flags-ab.mjs ROUNDS 'DIST [NODE ARGS...]' ...\n");
  process.exit(2);
}
const { topo, teardown } = topologyTornDownOnExit();
const cpu = (pid) => fs.readdirSync(`/proc/${pid}/task`).reduce((a, t) => {
  const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { u: a.u + +f[11], s: a.s + +f[12] };
}, { u: 0, s: 0 });
const connrate = async (s) => JSON.parse((await run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), String(s), '50', '6', 'eof'], { ns: topo.ns.scli, timeoutMs: (s + 30) * 1000 })).stdout).ok;
const res = variants.map(() => []);
try {
  topo.create();
  const greet = await startTcpServer(topo, 'greet');
  for (let r = 0; r < +rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      const [dist, ...args] = variants[i].split(' ');
      // bench/lib/synfin.js adds the image's semi-space flags unless a variant gives its own.
      process.env.SYNFIN_BENCH_NODE_ARGS = args.join(' ');
      const sf = await new SynfinProcess(topo, { dist, name: 'fab', mtu: 1500 }).start();
      await connrate(2);
      const a = cpu(sf.pid); const n = await connrate(5); const b = cpu(sf.pid);
      const u = ((b.u - a.u) * 1e4) / n, s = ((b.s - a.s) * 1e4) / n;
      res[i].push({ u, s, t: u + s, rate: n / 5 });
      console.log(`round ${r + 1} ${variants[i]}: ${(u + s).toFixed(1)} µs/conn (user ${u.toFixed(1)}, sys ${s.toFixed(1)}), ${(n / 5).toFixed(0)}/s`);
      await sf.stop();
    }
  }
  await greet.stop();
} finally { teardown(); }
const med = (xs) => { const v = [...xs].sort((a, b) => a - b); return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };
for (let i = 0; i < variants.length; i++) console.log(`${variants[i]}: median ${med(res[i].map((x) => x.t)).toFixed(1)} µs/conn (user ${med(res[i].map((x) => x.u)).toFixed(1)}, sys ${med(res[i].map((x) => x.s)).toFixed(1)}), ${med(res[i].map((x) => x.rate)).toFixed(0)}/s`);
