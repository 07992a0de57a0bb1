// Preloaded into synfin by bench/tail.mjs (node --require), for finding where slow connections
// come from: records with CLOCK_MONOTONIC timestamps (µs, the clock bench/tools/connrate's
// CONNRATE_SAMPLES file uses) and writes them as JSON to $SYNFIN_TRACE_TAIL when the process exits:
//   gc       every garbage collection: start, duration, kind (perf_hooks 'gc' entries)
//   late     every turn of a 2 ms watchdog timer that ran more than 1 ms late, with the CPU time
//            the process used meanwhile and its involuntary context switches: a late turn with
//            CPU ≈ the lateness is the event loop busy; with little CPU, the thread was not running
//            (waiting for a core: the host) or waiting in a system call
//   threads  CPU time of every thread at exit (the main thread, V8's workers, libuv's pool if started)
//   timers   every other timer callback: when it ran, how long it took and its function's name (global setTimeout and
//            setInterval wrapped, so the stack's own timer and the dial timer are in it)
// Not for production: the watchdog wakes the process 500 times a second and the wrapper allocates.
'use strict';
const fs = require('node:fs');
const { PerformanceObserver, performance } = require('node:perf_hooks');

const out = process.env.SYNFIN_TRACE_TAIL;
if (out) {
  const monoUs = () => Number(process.hrtime.bigint()) / 1e3;
  // performance.now() and hrtime share the monotonic clock; only their origins differ.
  const perfToMonoUs = monoUs() - performance.now() * 1e3;
  const gc = [];
  const late = [];
  const timers = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.push([e.startTime * 1e3 + perfToMonoUs, e.duration * 1e3, e.detail?.kind ?? e.kind ?? 0]);
  });
  obs.observe({ entryTypes: ['gc'] });

  const origSetTimeout = global.setTimeout;
  const origSetInterval = global.setInterval;
  const wrap = (orig) =>
    function (cb, ms, ...args) {
      if (typeof cb !== 'function') return orig.call(this, cb, ms, ...args);
      return orig.call(
        this,
        function (...a) {
          const t0 = monoUs();
          try {
            return cb.apply(this, a);
          } finally {
            timers.push([t0, monoUs() - t0, cb.name || '?']);
          }
        },
        ms,
        ...args,
      );
    };
  global.setTimeout = wrap(origSetTimeout);
  global.setInterval = wrap(origSetInterval);

  const PERIOD_MS = 2;
  let expected = monoUs() + PERIOD_MS * 1e3;
  let ru = process.resourceUsage();
  const tick = () => {
    const now = monoUs();
    const r = process.resourceUsage();
    const lateUs = now - expected;
    if (lateUs > 1000) {
      const cpuUs = r.userCPUTime + r.systemCPUTime - ru.userCPUTime - ru.systemCPUTime;
      late.push([expected, lateUs, cpuUs, r.involuntaryContextSwitches - ru.involuntaryContextSwitches]);
    }
    ru = r;
    expected = now + PERIOD_MS * 1e3;
    origSetTimeout(tick, PERIOD_MS).unref();
  };
  origSetTimeout(tick, PERIOD_MS).unref();

  // $SYNFIN_TRACE_ALLOC=FILE: the sampling heap profiler with the objects young- and old-generation
  // collections freed included (what fills the young generation, not what stays), written to
  // FILE (a .heapprofile) at exit.
  const allocOut = process.env.SYNFIN_TRACE_ALLOC;
  let session = null;
  if (allocOut) {
    const inspector = require('node:inspector');
    session = new inspector.Session();
    session.connect();
    session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }

  process.on('exit', () => {
    if (session !== null) {
      // The inspector answers synchronously within post() in the same thread.
      session.post('HeapProfiler.stopSampling', (err, r) => {
        if (!err) fs.writeFileSync(allocOut, JSON.stringify(r.profile));
      });
    }
    const own = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(/\s+/).map(Number);
    // CPU time of every thread (main, V8's platform workers doing GC and compilation, and libuv's
    // pool, whose four threads only exist once something used it).
    const threads = {};
    for (const tid of fs.readdirSync('/proc/self/task')) {
      try {
        const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ticks = Number(f[11]) + Number(f[12]);
        threads[tid === String(process.pid) ? 'main' : `${name}:${tid}`] = ticks * 10;
      } catch {
        // the thread ended meanwhile
      }
    }
    fs.writeFileSync(out, JSON.stringify({ gc, late, timers, periodMs: PERIOD_MS, threadsCpuMs: threads, schedstat: { cpuNs: own[0], runDelayNs: own[1], slices: own[2] } }));
  });
}
