/**
 * The long-running fuzz target (`npm run fuzz`, see fuzz/run.mjs): the property of
 * stack.fuzz.test.ts at volume, against ONE stack for the whole run so that anything that
 * accumulates across connections shows up. The run is a sequence of epochs; each feeds a fresh
 * sample of operations (seeded: seed + epoch) and then drains the stack, which must come back
 * to an empty table. After each drain the heap is measured after a full GC; it must stay within
 * FUZZ_HEAP_SLACK_MB of the level measured after the warm-up epochs.
 *
 * Environment (set by fuzz/run.mjs): FUZZ_SECONDS (duration), FUZZ_SEED, FUZZ_OPS_PER_EPOCH,
 * FUZZ_HEAP_SLACK_MB, FUZZ_REPORT (a JSON file for the summary).
 */
import fs from 'node:fs';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { opArb, StackFuzzHarness, type Op } from './stack-harness.js';

const seconds = Number(process.env.FUZZ_SECONDS ?? 600);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const opsPerEpoch = Number(process.env.FUZZ_OPS_PER_EPOCH ?? 2000);
const heapSlackMb = Number(process.env.FUZZ_HEAP_SLACK_MB ?? 24);
const reportFile = process.env.FUZZ_REPORT ?? '';
const WARMUP_EPOCHS = 20;

const gc = (globalThis as { gc?: () => void }).gc;

function heapMb(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

function describeOp(op: Op): string {
  return JSON.stringify(op, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}

it(`stack fuzz for ${seconds} s (seed ${seed})`, async () => {
  expect(gc, 'run with --expose-gc (fuzz/run.mjs does)').toBeTypeOf('function');
  const started = Date.now();
  const deadline = started + seconds * 1000;
  let h = new StackFuzzHarness();
  let epoch = 0;
  let ops = 0;
  let packetsBefore = 0;
  let baseline = 0;
  let maxHeap = 0;
  const heapSamples: Array<{ epoch: number; heapMb: number; rssMb: number }> = [];
  let lastReport = Date.now();
  while (Date.now() < deadline) {
    const sample = fc.sample(fc.array(opArb, { minLength: opsPerEpoch, maxLength: opsPerEpoch }), { numRuns: 1, seed: seed + epoch })[0]!;
    for (let i = 0; i < sample.length; i++) {
      const op = sample[i]!;
      try {
        h.run(op);
      } catch (err) {
        process.stderr.write(`\nFAILED at seed ${seed} epoch ${epoch} op ${i}: ${describeOp(op)}\n`);
        throw err;
      }
    }
    ops += sample.length;
    try {
      h.drain();
    } catch (err) {
      process.stderr.write(`\nFAILED at drain after seed ${seed} epoch ${epoch}\n`);
      throw err;
    }
    h.resetModels();
    epoch++;
    // Let flushSoon's setImmediate callbacks run between epochs.
    await new Promise((r) => setImmediate(r));
    if (epoch % 10 === 0) {
      const heap = heapMb();
      const rss = process.memoryUsage().rss / 2 ** 20;
      heapSamples.push({ epoch, heapMb: Math.round(heap * 10) / 10, rssMb: Math.round(rss) });
      if (epoch === WARMUP_EPOCHS) baseline = heap;
      if (heap > maxHeap) maxHeap = heap;
      if (baseline > 0 && heap > baseline + heapSlackMb) {
        throw new Error(`heap grew from ${baseline.toFixed(1)} MB to ${heap.toFixed(1)} MB after ${epoch} epochs (seed ${seed})`);
      }
    }
    if (epoch % 50 === 0) {
      // Every so often a fresh stack with other limits, so both long-lived and new stacks are covered.
      packetsBefore += h.packets;
      h = new StackFuzzHarness({ synBacklog: 1 + (epoch % 7), maxConnections: 2 + (epoch % 11) });
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      const s = (Date.now() - started) / 1000;
      process.stdout.write(
        `[fuzz] ${s.toFixed(0)} s: ${epoch} epochs, ${ops} ops (${Math.round(ops / s)}/s), packets ${packetsBefore + h.packets}, heap ${heapMb().toFixed(1)} MB (baseline ${baseline.toFixed(1)})\n`,
      );
    }
  }
  const summary = {
    seed,
    seconds: (Date.now() - started) / 1000,
    epochs: epoch,
    ops,
    packets: packetsBefore + h.packets,
    baselineHeapMb: Math.round(baseline * 10) / 10,
    maxHeapMb: Math.round(maxHeap * 10) / 10,
    outcomesLastStack: Object.fromEntries(h.outcomes),
    dropsLastStack: Object.fromEntries(h.drops),
    heapSamples,
  };
  process.stdout.write(`[fuzz] done: ${JSON.stringify({ ...summary, heapSamples: undefined })}\n`);
  if (reportFile !== '') fs.writeFileSync(reportFile, JSON.stringify(summary, null, 2) + '\n');
  expect(epoch).toBeGreaterThan(0);
});
