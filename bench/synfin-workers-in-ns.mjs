// The multi-queue experiment of issue 24 item 5 (BENCHMARKS.md, "Past one core"): one TUN device
// opened with IFF_MULTI_QUEUE and QUEUES queues, and one whole synfin stack per queue, each in a
// worker thread of this process (node:worker_threads) with its own event loop, upstream sockets,
// metrics and HTTP API. Nothing is merged: it measures what the stacks cost side by side, not the
// finished design. Same interface as synfin-in-ns.mjs, plus the queue count:
//
//   node bench/synfin-workers-in-ns.mjs DIST_DIR NETNS CONFIG_JSON QUEUES
//
// Prints one JSON line {"ready": URL of worker 0's API, "pid", "mtu", "urls", "tids"} once every
// worker is up. SIGTERM/SIGINT shut the workers down; with SYNFIN_BENCH_THREAD_CPU=FILE, each
// thread's CPU time (ms, user + system, since it started) is appended to FILE as one JSON line first.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** utime + stime of /proc/<...>/stat in ms (USER_HZ 100), and the thread id (field 1). */
function threadCpu(statPath) {
  const stat = fs.readFileSync(statPath, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { tid: Number(stat.slice(0, stat.indexOf(' '))), ms: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
}

const load = (distDir, file) => import(pathToFileURL(path.join(path.resolve(distDir), file)).href);

if (isMainThread) {
  const [distDir, netns, configJson, queuesArg] = process.argv.slice(2);
  const n = Number(queuesArg);
  if (distDir === undefined || netns === undefined || configJson === undefined || !(n >= 1)) {
    process.stderr.write('usage: synfin-workers-in-ns.mjs DIST_DIR NETNS CONFIG_JSON QUEUES\n');
    process.exit(2);
  }
  const { DEFAULT_CONFIG } = await load(distDir, 'config.js');
  const { Tun } = await load(distDir, 'tun/index.js');
  const { configureDevice } = await load(distDir, 'tun/configure.js');
  const config = { ...DEFAULT_CONFIG, ...JSON.parse(configJson) };
  // Every queue is attached here, in this namespace, before the device moves (TUNSETIFF finds the
  // name in the opener's namespace); the device is configured once, through queue 0.
  const queues = Tun.openQueues({ name: config.tun, vnetHdr: true }, n);
  queues[0].moveToNetns(netns);
  configureDevice(queues[0], config);
  // The workers adopt the fds by number. These Tun objects stay referenced (never collected, never
  // closed here) so that their fds stay open for the workers.
  globalThis.__synfinQueues = queues;
  const workers = [];
  const ready = [];
  for (let i = 0; i < n; i++) {
    const w = new Worker(fileURLToPath(import.meta.url), {
      workerData: { distDir, netns, config: { ...config, listenPort: 0 }, fd: queues[i].fd, name: queues[i].name, index: i },
    });
    workers.push(w);
    ready.push(
      new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
    );
  }
  const infos = await Promise.all(ready);
  const mtu = queues[0].mtu;
  process.stdout.write(JSON.stringify({ ready: infos[0].url, pid: process.pid, mtu, urls: infos.map((x) => x.url), tids: infos.map((x) => x.tid) }) + '\n');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const out = process.env.SYNFIN_BENCH_THREAD_CPU;
    if (out !== undefined) {
      const threads = infos.map((x) => threadCpu(`/proc/self/task/${x.tid}/stat`));
      fs.appendFileSync(out, JSON.stringify({ queues: n, process: threadCpu('/proc/self/stat').ms, main: threadCpu(`/proc/self/task/${process.pid}/stat`).ms, workers: threads.map((t) => t.ms) }) + '\n');
    }
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) => {
            w.once('exit', resolve);
            w.postMessage('shutdown');
          }),
      ),
    );
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { distDir, netns, config, fd, name } = workerData;
  const { Tun } = await load(distDir, 'tun/index.js');
  const { startSynfin } = await load(distDir, 'runtime.js');
  const tun = Tun.open({ name, vnetHdr: true, fd, netns });
  const synfin = await startSynfin(config, { tun });
  parentPort.postMessage({ url: synfin.listenUrl, tid: threadCpu('/proc/thread-self/stat').tid });
  parentPort.on('message', async (m) => {
    if (m !== 'shutdown') return;
    await synfin.shutdown('benchmark done');
    process.exit(0);
  });
}
