#!/usr/bin/env node
// What merging costs the main thread in the multi-queue design (issue 24 item 5, BENCHMARKS.md
// "Past one core"): a worker thread sends per-connection records to the main thread over a
// MessagePort, one message each or in batches, or bumps shared counters in a SharedArrayBuffer.
// Prints µs per record for the sender and the receiver (each busy the whole time it is timed,
// elapsed time over records) and ns per shared counter update, alone and with two threads
// updating the same counters. CPU time from /proc/thread-self/stat (10 ms ticks) next to it.
//   node bench/mq-merge-cost.mjs [records=200000]
import fs from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const RECORDS = Number(process.argv[2] ?? 200_000);

function threadCpuMs() {
  const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** A closed connection's record as a flight recorder row might carry it. */
function record(i) {
  return { id: i, state: 'CLOSED', reason: 'fin', openedAt: 1e12 + i, closedAt: 1e12 + i + 5, bytesIn: 64, bytesOut: 6, src: '198.18.0.1', sport: 40000 + (i & 0x3fff), dst: '198.18.1.2', dport: 80 };
}

if (isMainThread) {
  const results = {};
  for (const batch of [1, 64]) {
    const w = new Worker(new URL(import.meta.url), { workerData: { mode: 'post', batch, records: RECORDS } });
    let got = 0;
    let t0 = 0;
    let cpu0 = 0;
    const senderDone = new Promise((resolve) => w.on('message', (m) => m.kind === 'done' && resolve(m)));
    // The receiver counts records; timing starts at the first message, when the sender has a
    // queue built up, and ends at the last.
    const received = new Promise((resolve) => {
      w.on('message', (m) => {
        if (m.kind !== 'data') return;
        if (got === 0) {
          t0 = performance.now();
          cpu0 = threadCpuMs();
        }
        got += m.records.length;
        if (got >= RECORDS) resolve();
      });
    });
    const sender = await senderDone;
    await received;
    const ms = performance.now() - t0;
    const cpu = threadCpuMs() - cpu0;
    results[`postMessage, ${batch} record(s) per message`] = {
      senderUsPerRecord: +((sender.ms * 1000) / RECORDS).toFixed(3),
      senderCpuUsPerRecord: +((sender.cpu * 1000) / RECORDS).toFixed(3),
      receiverUsPerRecord: +((ms * 1000) / RECORDS).toFixed(3),
      receiverCpuUsPerRecord: +((cpu * 1000) / RECORDS).toFixed(3),
    };
    await w.terminate();
  }
  const sab = new SharedArrayBuffer(64 * 8);
  for (const threads of [1, 2]) {
    const ws = [];
    for (let i = 0; i < threads; i++) ws.push(new Worker(new URL(import.meta.url), { workerData: { mode: 'atomics', sab, updates: RECORDS * 20 } }));
    const outs = await Promise.all(ws.map((w) => new Promise((resolve) => w.once('message', resolve))));
    results[`Atomics.add on one shared counter, ${threads} thread(s)`] = { nsPerUpdate: outs.map((o) => +((o.ms * 1e6) / (RECORDS * 20)).toFixed(1)) };
    await Promise.all(ws.map((w) => w.terminate()));
  }
  {
    const counters = new Float64Array(64);
    const t = performance.now();
    for (let i = 0; i < RECORDS * 20; i++) counters[i & 7]++;
    results['plain counter in a Float64Array, one thread'] = { nsPerUpdate: +(((performance.now() - t) * 1e6) / (RECORDS * 20)).toFixed(1) };
  }
  console.log(JSON.stringify({ records: RECORDS, results }, null, 2));
} else if (workerData.mode === 'post') {
  const { batch, records } = workerData;
  const t = performance.now();
  const c = threadCpuMs();
  for (let i = 0; i < records; i += batch) {
    const list = [];
    for (let j = 0; j < batch && i + j < records; j++) list.push(record(i + j));
    parentPort.postMessage({ kind: 'data', records: list });
  }
  parentPort.postMessage({ kind: 'done', ms: performance.now() - t, cpu: threadCpuMs() - c });
} else {
  const { sab, updates } = workerData;
  const view = new BigInt64Array(sab);
  const t = performance.now();
  for (let i = 0; i < updates; i++) Atomics.add(view, 0, 1n);
  parentPort.postMessage({ ms: performance.now() - t });
}
