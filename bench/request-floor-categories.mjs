// Sorts the samples of a relay's `perf script` (recorded with -g) into the categories of
// BENCHMARKS.md "The floor of a small request": each sample goes to the first rule its call chain
// matches, from the leaf up. Kernel work is split by the system call it runs in; the kernel TCP
// receive of the peer's socket that a write runs inline (synfin's TUN write delivers the
// segment to the app's socket in synfin's own system call; a veth write may run the receiver's
// softirq in the writer's context too) is its own category.
//
//   perf script -i perf.data -F comm,tid,ip,sym,dso | node bench/request-floor-categories.mjs synfin
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const has = (frames, names) => frames.some((f) => names.some((n) => f.sym === n || f.sym.startsWith(n + '+')));
const anySym = (frames, re) => frames.some((f) => re.test(f.sym));

const SYSCALL_ENTRY = 'system call entry/exit and VFS (fd lookup, iovec copy)';
const SYSCALL_WRAPPERS = /^(read|write|writev|readv|__GI___writev|__GI___readv|__GI___libc_write|__GI___libc_read|__libc_read|__libc_write|epoll_pwait|epoll_wait|__GI_epoll_pwait|__GI_epoll_wait|recvfrom|sendto|__libc_recvfrom|__libc_sendto|__libc_recv|__libc_send|recv|send|__GI___pthread_disable_asynccancel|__GI___pthread_enable_asynccancel)(\+0x[0-9a-f]+)?$/;

/** Ordered rules: [category, test(frames, leaf)]; the first that matches takes the sample. */
const RULES = [
  ['preempted: the scheduler on the way back from a system call (a loaded machine)', (f) => has(f, ['exit_to_user_mode_loop', 'schedule', '__schedule', 'preempt_schedule_irq'])],
  ['syscall tracepoints (other tracers on the machine)', (f) => has(f, ['syscall_trace_enter', 'perf_trace_sys_enter', 'perf_trace_sys_exit', 'syscall_exit_work'])],
  ['TUN write: the app socket’s TCP receive, inline', (f) => has(f, ['tun_get_user']) && has(f, ['tcp_v4_rcv', 'tcp_v6_rcv'])],
  ['TUN write: the rest', (f) => has(f, ['tun_get_user', 'tun_chr_write_iter'])],
  ['TUN read', (f) => has(f, ['tun_chr_read_iter', 'tun_do_read', 'tun_ring_recv'])],
  ['socket write: the peer’s TCP receive, inline (veth softirq)', (f) => has(f, ['tcp_sendmsg', 'tcp_sendmsg_locked']) && has(f, ['tcp_v4_rcv', 'tcp_v6_rcv'])],
  ['socket write: own send path', (f) => has(f, ['tcp_sendmsg', 'tcp_sendmsg_locked', 'sock_write_iter', '__sys_sendmsg', '__sys_sendto'])],
  ['socket read', (f) => has(f, ['tcp_recvmsg', 'sock_read_iter', '__sys_recvmsg', '__sys_recvfrom', 'tcp_read_sock'])],
  ['epoll', (f) => has(f, ['do_epoll_wait', 'ep_poll', '__x64_sys_epoll_wait', '__x64_sys_epoll_pwait', 'do_epoll_ctl'])],
  ['softirq/irq outside a system call (timers, RX)', (f) => has(f, ['__do_softirq', 'handle_softirqs', 'asm_sysvec_apic_timer_interrupt', 'irq_exit_rcu']) && !has(f, ['entry_SYSCALL_64', 'do_syscall_64'])],
  [SYSCALL_ENTRY, (f) => has(f, ['entry_SYSCALL_64', 'do_syscall_64', 'entry_SYSCALL_64_after_hwframe', 'syscall_exit_to_user_mode'])],
  ['GC', (f) => anySym(f, /v8::internal::(Heap|Scavenger|MarkCompact|Sweeper|ConcurrentMarking|MinorMarkCompact|ScavengeJob|GCTracer|MemoryAllocator|IncrementalMarking|MarkingVisitor|PagedSpace|Evacuat)/)],
  ['other kernel', (f, leaf) => leaf.kernel],
  ['JS (compiled and builtins)', (f, leaf) => leaf.dso.includes('perf-') || /^(JS:|LazyCompile:|Function:|Builtin:|BytecodeHandler:|Interpreted|Stub:|Script:|RegExp:)/.test(leaf.sym)],
  // Samples in libc's system call wrappers are the way in and out of the kernel (in a PVM guest the
  // sampling interrupt is delivered when interrupts come back on, on either side of the switch).
  [SYSCALL_ENTRY, (f, leaf) => /libc/.test(leaf.dso) && SYSCALL_WRAPPERS.test(leaf.sym)],
  ['native addon', (f, leaf) => /synfin|\.node$/.test(leaf.dso)],
  ['libc/libuv', (f, leaf) => /libc|libuv|ld-linux/.test(leaf.dso)],
  ['node/V8 runtime', (f, leaf) => /node$/.test(leaf.dso)],
  ['haproxy', (f, leaf) => /haproxy/.test(leaf.dso)],
  ['other', () => true],
];

/**
 * `text`: perf script output (-F comm,tid,ip,sym,dso, with call chains). Resolves
 * { samples, percent: { category: % }, threads: { comm: % } }.
 */
export function categorize(text) {
  const counts = {};
  const threads = {};
  let samples = 0;
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    if (lines.length < 2) continue;
    const head = lines[0];
    const comm = head.trim().split(/\s+/)[0];
    const frames = lines.slice(1).map(parseFrame);
    const leaf = frames[0];
    let cat = 'other';
    for (const [name, test] of RULES) {
      if (test(frames, leaf)) {
        cat = name;
        break;
      }
    }
    counts[cat] = (counts[cat] ?? 0) + 1;
    threads[comm] = (threads[comm] ?? 0) + 1;
    samples++;
  }
  const pct = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, (100 * v) / Math.max(1, samples)]));
  return { samples, percent: pct(counts), threads: pct(threads) };
}

function parseFrame(line) {
  // "\t ffffffff81234567 tcp_v4_rcv+0x12 ([kernel.kallsyms])"
  const m = /^\s*([0-9a-f]+)\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
  if (m === null) return { sym: line.trim(), dso: '', kernel: false };
  return { sym: m[2], dso: m[3], kernel: m[3].includes('kernel') };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = categorize(fs.readFileSync(0, 'utf8'));
  for (const [k, v] of Object.entries(r.percent).sort((a, b) => b[1] - a[1])) process.stdout.write(`${v.toFixed(1).padStart(5)} %  ${k}\n`);
  process.stdout.write(`samples ${r.samples}; threads ${JSON.stringify(r.threads)}\n`);
}
