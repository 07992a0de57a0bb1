#!/usr/bin/env node
// Where the Node.js floor's system time goes when it does more user work per connection (issue 24,
// BENCHMARKS.md "synfin's extra system time per short connection"): tun-floor.mjs plain, with
// --burn=30 and with --touch=256, 50 short connections in flight (connrate, greet server), `perf
// record -g` of the relay for 4 s, each sample put in one bin: inside a system call (softirq work
// inside it apart), an interrupt taken in user mode (softirq or other: work of other tasks' packets
// billed to the relay), a page fault, or user space. Two rounds. Needs root.
//
//   sudo node bench/floor-irq-split.mjs
import { topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { TunFloor } from './lib/tun-floor.js';
import { endpoint } from './lib/relays.js';
import { run, sleep, procCpuSplitMs } from './lib/proc.js';
import { checkPrerequisites, tool } from './lib/tools.js';
import { execFileSync } from 'node:child_process';

checkPrerequisites(['ip', 'perf']);
const { topo } = topologyTornDownOnExit();
topo.create();
const server = await startTcpServer(topo, 'greet');
const ep = endpoint(topo, 'synfin');
for (const round of [0, 1]) for (const extra of [[], ['--burn=30'], ['--touch=256']]) {
  const relay = await new TunFloor(topo, { js: true, extra }).start();
  await run(tool('connrate'), [ep.host, String(PORT.greet), '1', '50', '6', 'eof'], { ns: ep.ns });
  const load = run(tool('connrate'), [ep.host, String(PORT.greet), '6', '50', '6', 'eof'], { ns: ep.ns, timeoutMs: 60000 });
  await sleep(500);
  const c0 = procCpuSplitMs(relay.pid);
  execFileSync('perf', ['record', '-q', '-F', '1999', '-g', '-p', String(relay.pid), '-o', '/tmp/irq.data', '--', 'sleep', '4'], { stdio: 'ignore' });
  const c1 = procCpuSplitMs(relay.pid);
  const res = JSON.parse((await load).stdout);
  await relay.stop();
  const text = execFileSync('perf', ['script', '-i', '/tmp/irq.data', '-F', 'ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const cats = {}; let n = 0;
  for (const block of text.split('\n\n')) {
    const fr = block.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (fr.length === 0) continue;
    n++;
    const j = fr.join(' ');
    const sys = /entry_SYSCALL_64/.test(j);
    const irq = /asm_common_interrupt|asm_sysvec|sysvec_|irq_exit|__do_softirq|handle_softirqs|asm_call_irq/.test(j);
    const soft = /__do_softirq|handle_softirqs|net_rx_action/.test(j);
    const k = sys ? (soft ? 'syscall: softirq inside' : 'syscall') : irq ? (soft ? 'interrupt in user mode: softirq' : 'interrupt in user mode: other') : /exc_page_fault/.test(j) ? 'page fault' : 'user';
    cats[k] = (cats[k] ?? 0) + 1;
  }
  const rate = res.rate;
  const perConn = ((c1.user + c1.system - c0.user - c0.system) * 1000) / (rate * 4);
  const out = Object.entries(cats).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(100 * v / n).toFixed(1)}% = ${(perConn * v / n).toFixed(1)} µs`).join('; ');
  console.log(`round ${round + 1} floorjs${extra.join('')}: ${Math.round(rate)}/s, ${perConn.toFixed(1)} µs/conn under perf (user ${(((c1.user - c0.user) * 1000) / (rate * 4)).toFixed(1)}, system ${(((c1.system - c0.system) * 1000) / (rate * 4)).toFixed(1)}); samples ${n}: ${out}`);
}
await server.stop();
process.exit(0);
