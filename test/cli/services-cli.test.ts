/**
 * Named services on the command line of the built `synfin`: a bad --service, SYNFIN_SERVICE or
 * --service-file is one line and exit 2; a running synfin re-reads its --service-file on SIGHUP
 * (and keeps running), keeps the last good services when the file is bad, and exits 0 on SIGTERM.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeIfTun } from '../helpers/root.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-services-cli-'));

function synfin(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^synfin: /);
  expect(lines[0]).toMatch(pattern);
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('synfin run with bad services', () => {
  it('a bad --service or SYNFIN_SERVICE is one line and exit 2', () => {
    expectOneLineError(synfin(['run', '--service', 'payments']), /--service: "payments" must look like NAME=CIDR\[:PORT\[-PORT\]\]/);
    expectOneLineError(synfin(['run', '--service', 'other=10.0.0.0/8']), /"other" is reserved/);
    expectOneLineError(synfin(['run'], { SYNFIN_SERVICE: 'a=10.0.0.0/8,b=10.0.0.0/8:99999' }), /bad port or port range "99999"/);
  });

  it('a missing, malformed or too large --service-file is one line and exit 2', () => {
    expectOneLineError(synfin(['run', '--service-file', path.join(dir, 'missing.yaml')]), /--service-file: cannot read .*missing.yaml \(ENOENT\)/);
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, '- name: x\n  cidr: nope\n');
    expectOneLineError(synfin(['run', '--service-file', bad]), /--service-file .*bad.yaml entry 1: "nope" is not an IP address or CIDR/);
    const many = path.join(dir, 'many.json');
    fs.writeFileSync(many, JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ name: `s${i}`, cidr: `10.1.${i & 255}.${i >> 8}` }))));
    expectOneLineError(synfin(['run', '--service-file', many]), /300 service names, more than 256/);
  });

  it('--help shows the options', () => {
    const r = synfin(['run', '--help']);
    expect(r.stdout).toContain('--service <NAME=CIDR:PORTS>');
    expect(r.stdout).toContain('NAME=CIDR[:PORT[-PORT]] names the destinations');
    expect(r.stdout).toContain('--service-file <FILE>');
  });
});

describeIfTun('synfin run with a --service-file', () => {
  it('re-reads the file on SIGHUP, keeps the last good one when it is bad, and still exits 0 on SIGTERM', async () => {
    const file = path.join(dir, 'services.yaml');
    fs.writeFileSync(file, '- {name: first, cidr: 10.10.0.0/16}\n');
    const name = `sfsvc${process.pid % 10000}`;
    const child = spawn(process.execPath, [BIN, 'run', '--tun', name, '--listen', '127.0.0.1:0', '--shutdown-grace', '0', '--service', 'flag=10.20.0.0/16', '--service-file', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    const waitOut = async (what: RegExp, from = 0): Promise<string> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const line = out.slice(from).split('\n').find((l) => what.test(l));
        if (line !== undefined) return line;
        if (Date.now() > deadline) throw new Error(`never saw ${what}: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      const ready = JSON.parse(await waitOut(/synfin ready/)) as { listen: string };
      const metrics = async () => (await fetch(`${ready.listen}/metrics`)).text();
      let m = await metrics();
      expect(m).toContain('synfin_service_connections{service="first",state="ESTABLISHED"} 0');
      expect(m).toContain('synfin_service_connections{service="flag",state="ESTABLISHED"} 0');

      // Written and signalled at once: the SIGHUP reads it (before the watch's debounce).
      let mark = out.length;
      fs.writeFileSync(file, '- {name: second, cidr: 10.10.0.0/16}\n');
      child.kill('SIGHUP');
      const reloaded = JSON.parse(await waitOut(/services reloaded/, mark)) as { reason: string; services: number };
      expect(reloaded.reason).toBe('SIGHUP');
      expect(reloaded.services).toBe(2);
      m = await metrics();
      expect(m).toContain('synfin_service_connections{service="second",state="ESTABLISHED"} 0');
      expect(m).not.toContain('service="first"');

      // A bad file: one error, the services stay.
      mark = out.length;
      fs.writeFileSync(file, '- {name: "bad name", cidr: 10.10.0.0/16}\n');
      child.kill('SIGHUP');
      const error = JSON.parse(await waitOut(/service file rejected/, mark)) as { level: number; err: { message: string } };
      expect(error.level).toBe(50);
      expect(error.err.message).toMatch(/service name "bad name"/);
      child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 500));
      expect(out.slice(mark).split('\n').filter((l) => l.includes('service file rejected'))).toHaveLength(1);
      m = await metrics();
      expect(m).toContain('service="second"');
      expect((await fetch(`${ready.listen}/readyz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
