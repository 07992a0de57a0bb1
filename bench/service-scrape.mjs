#!/usr/bin/env node
// The cost of a /metrics scrape with named services (src/observability/service-metrics.ts): all of
// synfin's metric families, the 7 synfin_service_* families of S services plus `other`, and C
// connections walked from typed columns the way ConnectionRegistry.forEachSample walks the stack's
// (state, times, service per slot). Uses dist/ (`npm run build` first). Prints the median and the
// worst of R scrapes (wall ms) and the median CPU time of this process per scrape (what a loaded
// machine does not inflate) for the Prometheus text format and OpenMetrics, and the same without
// services for comparison; and the classifier's cost per connection (ns).
//   node bench/service-scrape.mjs [services=64] [connections=10000] [rounds=50]
import { createMetrics } from '../dist/observability/metrics.js';
import { ServiceMetrics } from '../dist/observability/service-metrics.js';
import { ServiceCatalogue, Services, parseServiceSpec } from '../dist/observability/services.js';
import { EventHub } from '../dist/stack/events.js';
import { State } from '../dist/tcp/state.js';

const S = Number(process.argv[2] ?? 64);
const C = Number(process.argv[3] ?? 10_000);
const R = Number(process.argv[4] ?? 50);

const specs = [];
for (let i = 0; i < S; i++) specs.push(`namespace-${i % 8}/service-${i}=10.${96 + (i >> 8)}.${i & 255}.0/24:${8000 + i}`);
const catalogue = new ServiceCatalogue(specs.map((s) => parseServiceSpec(s)));

// The stack's columns, as Stack.columns holds them: a code (state) and 4 numbers per slot.
const WIDTH = 4;
const code = new Uint8Array(C);
const values = new Float64Array(C * WIDTH);
const STATES = [State.ESTABLISHED, State.ESTABLISHED, State.ESTABLISHED, State.FIN_WAIT_2, State.CLOSE_WAIT, State.TIME_WAIT, State.SYN_RECEIVED];
const now0 = performance.now();
for (let slot = 0; slot < C; slot++) {
  code[slot] = STATES[slot % STATES.length];
  const at = slot * WIDTH;
  values[at] = now0 - (slot % 1000) * 10;
  values[at + 1] = now0 - (slot % 100);
  values[at + 2] = now0 - (slot % 500);
  // Classified once, as the registry does when the SYN arrives: a spread over the services and other.
  const svc = slot % (S + 8);
  const words = new Uint32Array([0, 0, 0, ((10 << 24) | ((96 + (svc >> 8)) << 16) | ((svc & 255) << 8) | 7) >>> 0]);
  values[at + 3] = catalogue.classify(4, words, 8000 + svc);
}
const clock = { now: () => performance.now() };
function forEachConnection(visit) {
  const sample = { state: State.CLOSED, createdAt: 0, lastActivityAt: 0, waitingOn: null, waitingSince: 0, service: 0 };
  for (let slot = 0; slot < C; slot++) {
    const state = code[slot];
    const at = slot * WIDTH;
    const waitingOn = state === State.FIN_WAIT_1 || state === State.FIN_WAIT_2 ? 'app' : state === State.CLOSE_WAIT ? 'upstream' : null;
    sample.state = state;
    sample.createdAt = values[at];
    sample.lastActivityAt = values[at + 1];
    sample.waitingOn = waitingOn;
    sample.waitingSince = waitingOn === null ? 0 : values[at + 2];
    sample.service = values[at + 3];
    visit(sample);
  }
}
const counters = () => ({ segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 });

async function measure(withServices) {
  const metrics = createMetrics(new EventHub(), { clock, forEachConnection, counters }, 'bench');
  if (withServices) {
    const sm = new ServiceMetrics(new Services(catalogue), { clock, forEachConnection }, { text: [metrics.registry], other: [metrics.openMetricsRegistry] });
    // Some counts, so the numbers rendered are not all zeros.
    for (let i = 0; i < 10_000; i++) {
      sm.connect(i % (S + 1), 'ok', (i % 50) / 10);
      sm.closed(i % (S + 1), 'fin');
    }
  }
  const out = {};
  for (const [label, registry] of [['text', metrics.registry], ['openmetrics', metrics.openMetricsRegistry]]) {
    const times = [];
    const cpu = [];
    let bytes = 0;
    for (let r = 0; r < R + 5; r++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const body = await registry.metrics();
      const t = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (r >= 5) {
        times.push(t);
        cpu.push((c.user + c.system) / 1000);
      }
      bytes = body.length;
    }
    times.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    const mid = Math.floor(times.length / 2);
    out[label] = { medianMs: +times[mid].toFixed(2), worstMs: +times[times.length - 1].toFixed(2), medianCpuMs: +cpu[mid].toFixed(2), bytes };
  }
  metrics.close();
  return out;
}

// The classifier, once per SYN: a destination that matches the last rule, and one that matches none.
function classifyNs(addr, port) {
  const words = new Uint32Array([0, 0, 0, addr >>> 0]);
  const n = 1_000_000;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) sink += catalogue.classify(4, words, port);
  const ns = ((performance.now() - t0) * 1e6) / n;
  if (sink < 0) console.log(sink);
  return +ns.toFixed(1);
}
const last = S - 1;
const classify = {
  lastRuleNs: classifyNs((10 << 24) | ((96 + (last >> 8)) << 16) | ((last & 255) << 8) | 7, 8000 + last),
  noMatchNs: classifyNs((192 << 24) | (168 << 16) | 1, 443),
};

const without = await measure(false);
const withServices = await measure(true);
console.log(JSON.stringify({ services: S, connections: C, rounds: R, node: process.version, classify, withoutServices: without, withServices }, null, 1));
