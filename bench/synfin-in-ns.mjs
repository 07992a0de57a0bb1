// Starts synfin in this process for the benchmark, with its TUN device moved into another
// namespace (the app's side) while its upstream sockets stay in the namespace this process runs in.
//
//   node bench/synfin-in-ns.mjs DIST_DIR NETNS CONFIG_JSON
//
// DIST_DIR is a compiled synfin (dist/ of this repository, or of a snapshot); CONFIG_JSON overrides
// fields of DEFAULT_CONFIG. Prints one JSON line {"ready": URL, "pid": PID, "mtu": N} once the device
// is up and the HTTP API listens. SIGTERM/SIGINT shut it down (so a --cpu-prof profile is written).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [distDir, netns, configJson] = process.argv.slice(2);
if (distDir === undefined || netns === undefined || configJson === undefined) {
  process.stderr.write('usage: synfin-in-ns.mjs DIST_DIR NETNS CONFIG_JSON\n');
  process.exit(2);
}
const load = (file) => import(pathToFileURL(path.join(path.resolve(distDir), file)).href);
const { DEFAULT_CONFIG } = await load('config.js');
const { startSynfin } = await load('runtime.js');

const config = { ...DEFAULT_CONFIG, ...JSON.parse(configJson) };

// SYNFIN_BENCH_ALLOC_PROFILE=FILE: V8's sampling heap profiler over everything allocated, garbage
// included (not only what is still live: --heap-prof's view), from SIGUSR2 to the next SIGUSR2,
// written to FILE as a .heapprofile (bench/alloc-sites.mjs sums it by function).
if (process.env.SYNFIN_BENCH_ALLOC_PROFILE) {
  const inspector = await import('node:inspector');
  const fs = await import('node:fs');
  const session = new inspector.Session();
  session.connect();
  let sampling = false;
  process.on('SIGUSR2', () => {
    if (!sampling) {
      sampling = true;
      session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      return;
    }
    sampling = false;
    session.post('HeapProfiler.stopSampling', (err, r) => {
      fs.writeFileSync(process.env.SYNFIN_BENCH_ALLOC_PROFILE, JSON.stringify(err ? { error: String(err) } : r.profile));
    });
  });
}
// config.workers > 1 (SYNFIN_BENCH_REAL_WORKERS=N in bench/lib/synfin.js): `synfin run --workers N`'s
// own main thread and worker threads (src/workers/supervisor.ts), as the CLI starts them.
if (config.workers > 1) {
  const { startWorkers } = await load('workers/supervisor.js');
  const w = await startWorkers(config, { netns, installSignalHandlers: true });
  process.stdout.write(JSON.stringify({ ready: w.listenUrl, pid: process.pid, mtu: w.queues[0].mtu }) + '\n');
} else {
  const synfin = await startSynfin(config, { netns, installSignalHandlers: true });
  process.stdout.write(JSON.stringify({ ready: synfin.listenUrl, pid: process.pid, mtu: synfin.tun.mtu }) + '\n');
}
