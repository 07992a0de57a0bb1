/**
 * deploy/kubernetes/sidecar.yaml, and the kustomize component with its defaults and as the
 * example overlay sets it: synfin's container memory limit, --memory-limit and
 * --max-connections agree (the sum written in the manifest, README "Limits").
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { resolveConfig } from '../../src/config.js';
import { CONN_MINIMUM, parseByteSize } from '../../src/tcp/memory-budget.js';
import { describeIfKubectl, kustomize } from './kubectl.js';

const MiB = 1024 * 1024;
/** Measured (BENCHMARKS.md "Memory bounded by design"), rounded up. */
const IDLE_PROCESS = 96 * MiB;
const STATE_PER_CONNECTION = 10 * 1024;
const RUNTIME_SLACK = 48 * MiB;

interface Container {
  name: string;
  env?: { name: string; value: string }[];
  envFrom?: { configMapRef: { name: string } }[];
  resources?: { limits?: { memory?: string } };
}

function kubeQuantity(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (m === null) throw new Error(`unexpected quantity ${q}`);
  const unit = m[2] === undefined ? 1 : ({ Ki: 1024, Mi: MiB, Gi: 1024 * MiB } as Record<string, number>)[m[2]]!;
  return Number(m[1]) * unit;
}

interface Doc {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec: { template: { spec: { initContainers: Container[]; containers: Container[] } } };
}

function checkMemory(docs: () => Doc[]): void {
  it('the container limit holds idle process + --memory-limit + connections × (state + minimum) + slack', () => {
    const all = docs();
    const pod = all.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    const synfin = [...pod.initContainers, ...pod.containers].find((c) => c.name === 'synfin')!;
    const env: Record<string, string> = {};
    for (const f of synfin.envFrom ?? []) Object.assign(env, all.find((d) => d.kind === 'ConfigMap' && d.metadata.name === f.configMapRef.name)!.data);
    for (const e of synfin.env ?? []) env[e.name] = e.value;
    const config = resolveConfig({}, env);
    expect(config.memoryLimit).toBe(parseByteSize(env.SYNFIN_MEMORY_LIMIT!));
    expect(config.maxConnections).toBeLessThan(100_000);
    const limit = kubeQuantity(synfin.resources!.limits!.memory!);
    const need = IDLE_PROCESS + config.memoryLimit! + config.maxConnections * (STATE_PER_CONNECTION + 2 * CONN_MINIMUM) + RUNTIME_SLACK;
    expect(need).toBeLessThanOrEqual(limit);
    // And not absurdly below it: the buffers get what the container can give.
    expect(need).toBeGreaterThan(limit * 0.8);
  });
}

const repo = path.join(import.meta.dirname, '..', '..');

describe('deploy/kubernetes/sidecar.yaml: memory', () => {
  checkMemory(() => parseAllDocuments(fs.readFileSync(path.join(repo, 'deploy', 'kubernetes', 'sidecar.yaml'), 'utf8')).map((d) => d.toJS() as Doc));
});

describeIfKubectl('deploy/kubernetes/example (the component with the overlay options): memory', () => {
  checkMemory(() => kustomize<Doc>('deploy', 'kubernetes', 'example'));
});

describeIfKubectl('deploy/kubernetes/synfin (the component with its defaults): memory', () => {
  checkMemory(() => {
    // The component on the example's plain Deployment, without the overlay's options.
    const dir = fs.mkdtempSync(path.join(repo, 'deploy', 'kubernetes', '.test-defaults-'));
    try {
      fs.copyFileSync(path.join(repo, 'deploy', 'kubernetes', 'example', 'deployment.yaml'), path.join(dir, 'deployment.yaml'));
      fs.writeFileSync(path.join(dir, 'kustomization.yaml'), 'resources: [deployment.yaml]\ncomponents: [../synfin]\n');
      return kustomize<Doc>('deploy', 'kubernetes', path.basename(dir));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
