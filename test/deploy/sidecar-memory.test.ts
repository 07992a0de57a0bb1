/**
 * deploy/kubernetes/sidecar.yaml: synfin's container memory limit, --memory-limit and
 * --max-connections agree (the sum written in the manifest, README "Limits").
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { resolveConfig } from '../../src/config.js';
import { CONN_MINIMUM, parseByteSize } from '../../src/tcp/memory-budget.js';

const MiB = 1024 * 1024;
/** Measured (BENCHMARKS.md "Memory bounded by design"), rounded up. */
const IDLE_PROCESS = 96 * MiB;
const STATE_PER_CONNECTION = 10 * 1024;
const RUNTIME_SLACK = 48 * MiB;

interface Container {
  name: string;
  env?: { name: string; value: string }[];
  resources?: { limits?: { memory?: string } };
}

function kubeQuantity(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (m === null) throw new Error(`unexpected quantity ${q}`);
  const unit = m[2] === undefined ? 1 : ({ Ki: 1024, Mi: MiB, Gi: 1024 * MiB } as Record<string, number>)[m[2]]!;
  return Number(m[1]) * unit;
}

describe('deploy/kubernetes/sidecar.yaml: memory', () => {
  const text = fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes', 'sidecar.yaml'), 'utf8');
  const deployment = parseAllDocuments(text).map((d) => d.toJS() as { kind: string; spec: { template: { spec: { initContainers: Container[]; containers: Container[] } } } }).find((d) => d.kind === 'Deployment')!;
  const pod = deployment.spec.template.spec;
  const synfin = [...pod.initContainers, ...pod.containers].find((c) => c.name === 'synfin')!;
  const env = Object.fromEntries((synfin.env ?? []).map((e) => [e.name, e.value]));

  it('the container limit holds idle process + --memory-limit + connections × (state + minimum) + slack', () => {
    const config = resolveConfig({}, env);
    expect(config.memoryLimit).toBe(parseByteSize(env.SYNFIN_MEMORY_LIMIT!));
    expect(config.maxConnections).toBeLessThan(100_000);
    const limit = kubeQuantity(synfin.resources!.limits!.memory!);
    const need = IDLE_PROCESS + config.memoryLimit! + config.maxConnections * (STATE_PER_CONNECTION + 2 * CONN_MINIMUM) + RUNTIME_SLACK;
    expect(need).toBeLessThanOrEqual(limit);
    // And not absurdly below it: the buffers get what the container can give.
    expect(need).toBeGreaterThan(limit * 0.8);
  });
});
