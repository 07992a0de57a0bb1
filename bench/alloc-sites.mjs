// Where synfin allocates per short connection (issue 24 item 2): synfin in the benchmark's
// topology with V8's sampling heap profiler over every allocation, garbage included
// (SYNFIN_BENCH_ALLOC_PROFILE, bench/synfin-in-ns.mjs), during S seconds of short connections
// closed by the server (50 in flight); prints bytes per connection by allocating function. With
// --workload http, per request of keep-alive HTTP instead (wrk -c64 against nginx).
//
//   npm run build && node bench/alloc-sites.mjs [--seconds 5] [--dist DIR] [--workload shortconn|http]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startNginx, startTcpServer } from './lib/servers.js';
import { wrk } from './lib/workloads.js';
import { SynfinProcess } from './lib/synfin.js';
import { run, sleep } from './lib/proc.js';
import { BENCH_DIR, tool } from './lib/tools.js';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    dist: { type: 'string', default: path.resolve(BENCH_DIR, '..', 'dist') },
    workload: { type: 'string', default: 'shortconn' },
  },
});
if (opt.workload !== 'shortconn' && opt.workload !== 'http') throw new Error(`--workload ${opt.workload}: shortconn or http`);
const HTTP = opt.workload === 'http';
const unit = HTTP ? 'request' : 'connection';
const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sf-alloc-')), 'alloc.heapprofile');
process.env.SYNFIN_BENCH_ALLOC_PROFILE = file;
const { topo, teardown: cleanup } = topologyTornDownOnExit();

const connrate = async (s) => JSON.parse((await run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), String(s), '50', '6', 'eof'], { ns: topo.ns.scli, timeoutMs: (s + 30) * 1000 })).stdout).ok;

async function main() {
  tool('connrate');
  tool('tcpserv');
  topo.create();
  const greet = HTTP ? await startNginx(topo) : await startTcpServer(topo, 'greet');
  const load = HTTP ? async (secs) => (await wrk(topo.ns.scli, ADDR.tunTarget, secs, false)).total : connrate;
  const sf = await new SynfinProcess(topo, { dist: path.resolve(opt.dist), name: 'alloc', mtu: 1500 }).start();
  try {
    await load(1);
    process.kill(sf.pid, 'SIGUSR2');
    await sleep(300);
    const n = await load(Number(opt.seconds));
    process.kill(sf.pid, 'SIGUSR2');
    while (!fs.existsSync(file)) await sleep(200);
    await sleep(500);
    const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
    const bySite = new Map();
    let total = 0;
    const walk = (node) => {
      const f = node.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${path.basename(f.url)}:${f.lineNumber + 1}`;
      const self = node.selfSize;
      if (self > 0) bySite.set(key, (bySite.get(key) ?? 0) + self);
      total += self;
      for (const c of node.children) walk(c);
    };
    walk(profile.head);
    console.log(`${n} ${HTTP ? 'keep-alive requests' : 'short connections'}; sampled allocation ${(total / n / 1000).toFixed(2)} KB per ${unit}; by allocating function:`);
    for (const [k, b] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${(b / n).toFixed(0).padStart(6)} B/${HTTP ? 'req' : 'conn'}  ${k}`);
  } finally {
    await sf.stop();
    await greet.stop();
  }
}
main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(cleanup);
