/**
 * deploy/services-from-kubectl.sh against a fake kubectl on PATH that prints a `kubectl get
 * services -A -o json` document (test/deploy/fixtures/kubectl-services.json, in kubectl's shape:
 * ClusterIP, dual-stack, headless, ExternalName, UDP-only and NodePort Services). The file it
 * writes is read by synfin's own parser, and names each Service's cluster IPs and TCP ports.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCatalogue, readServiceFile } from '../../src/service-file.js';

const ROOT = path.join(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'deploy/services-from-kubectl.sh');
const FIXTURE = path.join(import.meta.dirname, 'fixtures/kubectl-services.json');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A directory with a fake `kubectl` that records its arguments and prints `json`. */
function fakeKubectl(json: string): { dir: string; args: () => string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-kubectl-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'services.json'), json);
  fs.writeFileSync(path.join(dir, 'kubectl'), `#!/bin/sh\necho "$@" > "${dir}/args"\ncat "${dir}/services.json"\n`, { mode: 0o755 });
  return { dir, args: () => fs.readFileSync(path.join(dir, 'args'), 'utf8').trim() };
}

function run(dir: string, args: string[]) {
  const r = spawnSync('sh', [SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('deploy/services-from-kubectl.sh', () => {
  it('writes a service file naming cluster IPs (both families) and TCP ports NAMESPACE/NAME', () => {
    const k = fakeKubectl(fs.readFileSync(FIXTURE, 'utf8'));
    const out = path.join(k.dir, 'services.yaml');
    const r = run(k.dir, ['-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(k.args()).toBe('get services -A -o json');
    const { rules } = readServiceFile(out);
    const c = buildCatalogue([], rules);
    expect(c.names).toEqual(['other', 'default/kubernetes', 'ingress/gateway', 'kube-system/kube-dns', 'shop/payments']);
    expect(c.serviceOf('10.96.0.1:443')).toBe('default/kubernetes');
    expect(c.serviceOf('10.96.0.1:80')).toBe('other');
    // Dual-stack: both cluster IPs, every TCP port.
    expect(c.serviceOf('10.96.12.40:80')).toBe('shop/payments');
    expect(c.serviceOf('[fd00:10:96::c28]:9090')).toBe('shop/payments');
    expect(c.serviceOf('10.96.12.40:8080')).toBe('other');
    // A port without protocol is TCP; kube-dns keeps its TCP ports only.
    expect(c.serviceOf('[fd00:10:96::1f]:443')).toBe('ingress/gateway');
    expect(c.serviceOf('10.96.0.10:53')).toBe('kube-system/kube-dns');
    expect(c.serviceOf('10.96.0.10:9153')).toBe('kube-system/kube-dns');
    // Headless, ExternalName and UDP-only Services are not named.
    expect(c.names).not.toContain('shop/postgres-headless');
    expect(c.names).not.toContain('shop/legacy-api');
    expect(c.names).not.toContain('logging/syslog');
    expect(c.serviceOf('10.96.50.5:514')).toBe('other');
    // Every rule is a host: the cluster IP itself.
    expect(rules.every((rule) => rule.prefix === (rule.family === 4 ? 32 : 128))).toBe(true);
    expect(fs.readdirSync(k.dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('prints to standard output without -o, and passes -n and -l to kubectl', () => {
    const k = fakeKubectl(fs.readFileSync(FIXTURE, 'utf8'));
    const r = run(k.dir, ['-n', 'shop', '-l', 'app=payments']);
    expect(r.code).toBe(0);
    expect(k.args()).toBe('get services --namespace=shop --selector=app=payments -o json');
    expect(r.stdout).toMatch(/^# synfin --service-file/);
    expect(r.stdout).toContain('- name: "shop/payments"');
  });

  it('an empty list is a valid file that names nothing', () => {
    const k = fakeKubectl(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [] }));
    const out = path.join(k.dir, 'services.yaml');
    expect(run(k.dir, ['-o', out]).code).toBe(0);
    expect(readServiceFile(out).rules).toEqual([]);
  });

  it('refuses more than 256 Services and leaves the old file in place', () => {
    const items = Array.from({ length: 300 }, (_, i) => ({
      metadata: { name: `svc-${i}`, namespace: 'big' },
      spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, clusterIPs: [`10.97.${i >> 8}.${i & 255}`], ports: [{ port: 80, protocol: 'TCP' }], type: 'ClusterIP' },
    }));
    const k = fakeKubectl(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    const out = path.join(k.dir, 'services.yaml');
    fs.writeFileSync(out, '- {name: previous, cidr: 10.0.0.0/8}\n');
    const r = run(k.dir, ['-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/300 Services .* more than synfin's 256 names: narrow them with -n NAMESPACE or -l SELECTOR/);
    expect(fs.readFileSync(out, 'utf8')).toBe('- {name: previous, cidr: 10.0.0.0/8}\n');
    expect(fs.readdirSync(k.dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('fails when kubectl fails', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-kubectl-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'kubectl'), '#!/bin/sh\necho "error: You must be logged in to the server (Unauthorized)" >&2\nexit 1\n', { mode: 0o755 });
    const r = run(dir, []);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Unauthorized');
  });
});
