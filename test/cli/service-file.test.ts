/**
 * --service and --service-file as options (flag, SYNFIN_SERVICE, the config file, the limits),
 * and the file's reload: on change (fs.watch and the poll fallback), on demand (SIGHUP's path),
 * keeping the last good services when the file turns bad and logging one error per bad version.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/log.js';
import { Services } from '../../src/observability/services.js';
import { buildCatalogue, readServiceFile, ServiceFileWatcher } from '../../src/service-file.js';

const dirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-services-'));
  dirs.push(dir);
  return dir;
}
function tmpFile(name: string, text: string): string {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, text);
  return file;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, logger };
}

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const YAML_FILE = `# services
- name: payments
  cidr: 10.0.12.0/24
  ports: 443
- name: default/db
  cidr: fd00::/8
  ports: [5432, "6000-6010"]
`;

describe('--service and --service-file options', () => {
  it('--service is repeatable and SYNFIN_SERVICE takes several, comma-separated', () => {
    expect(resolveConfig({ service: ['a=10.0.0.0/8', 'b=fd00::/8:443'] }, {}).services).toEqual(['a=10.0.0.0/8', 'b=fd00::/8:443']);
    expect(resolveConfig({}, { SYNFIN_SERVICE: 'a=10.0.0.0/8:80, b=[fd00::1]:443' }).services).toEqual(['a=10.0.0.0/8:80', 'b=[fd00::1]:443']);
  });

  it('reads service as a list and service-file from the config file', () => {
    const services = tmpFile('services.yaml', YAML_FILE);
    const conf = tmpFile('synfin.yaml', `service:\n  - web=10.1.0.0/16:80\nservice-file: ${services}\n`);
    const c = resolveConfig({}, {}, conf);
    expect(c.services).toEqual(['web=10.1.0.0/16:80']);
    expect(c.serviceFile).toBe(services);
  });

  it('refuses a bad --service, a bad file, a missing file and too many names, naming the option', () => {
    expect(() => resolveConfig({ service: ['oops'] }, {})).toThrow(/^--service: "oops" must look like NAME=CIDR/);
    expect(() => resolveConfig({ 'service-file': tmpFile('bad.yaml', '- name: x\n  cidr: 10.0.0.0/99\n') }, {})).toThrow(/^--service-file .*entry 1: "10.0.0.0\/99" has a bad prefix length/);
    expect(() => resolveConfig({ 'service-file': tmpFile('bad.yaml', 'a: [1, 2\n') }, {})).toThrow(/^--service-file: .* is not valid YAML or JSON/);
    expect(() => resolveConfig({ 'service-file': '/nonexistent/services.yaml' }, {})).toThrow(/^--service-file: cannot read \/nonexistent\/services.yaml \(ENOENT\)/);
    const many = JSON.stringify(Array.from({ length: 257 }, (_, i) => ({ name: `s${i}`, cidr: `10.0.${i & 255}.${i >> 8}` })));
    expect(() => resolveConfig({ 'service-file': tmpFile('many.json', many) }, {})).toThrow(/257 service names, more than 256/);
  });

  it('puts the --service rules before the file (first match wins), JSON read as YAML', () => {
    const file = tmpFile('s.json', JSON.stringify([{ name: 'from-file', cidr: '10.0.0.0/8' }]));
    const c = buildCatalogue(['from-flag=10.1.0.0/16'], readServiceFile(file).rules);
    expect(c.serviceOf('10.1.2.3:80')).toBe('from-flag');
    expect(c.serviceOf('10.2.2.3:80')).toBe('from-file');
    expect(c.names).toEqual(['other', 'from-flag', 'from-file']);
  });
});

describe('the service file at run time', () => {
  function start(file: string, mode: 'watch' | 'poll') {
    const { lines, logger } = capture();
    const first = readServiceFile(file);
    const services = new Services(buildCatalogue(['flag=192.0.2.0/24'], first.rules));
    const watcher = new ServiceFileWatcher({ file, specs: ['flag=192.0.2.0/24'], services, logger, debounceMs: 50, mode, pollMs: 100 }, first.text);
    watcher.start();
    return { lines, services, watcher };
  }

  for (const mode of ['watch', 'poll'] as const) {
    it(`picks up a change of the file (${mode}), the --service rules staying in front`, async () => {
      const file = tmpFile('services.yaml', YAML_FILE);
      const { services, watcher, lines } = start(file, mode);
      try {
        expect(services.current.names).toEqual(['other', 'flag', 'payments', 'default/db']);
        // Replaced by rename, as editors and ConfigMaps do.
        const tmp = `${file}.tmp`;
        fs.writeFileSync(tmp, '- {name: cache, cidr: 10.9.0.0/16}\n');
        fs.renameSync(tmp, file);
        await until('the new services', () => services.current.names.includes('cache'));
        expect(services.current.names).toEqual(['other', 'flag', 'cache']);
        expect(services.serviceOf('10.9.1.1:6379')).toBe('cache');
        expect(lines.some((l) => l.msg === 'services reloaded' && l.services === 2)).toBe(true);
      } finally {
        watcher.close();
      }
    });
  }

  it('keeps the last good services when the file turns bad, and logs one error per bad version', async () => {
    const file = tmpFile('services.yaml', YAML_FILE);
    const { services, watcher, lines } = start(file, 'watch');
    try {
      const good = services.current;
      fs.writeFileSync(file, '- name: broken name\n  cidr: 10.0.0.0/8\n');
      await until('the error', () => lines.some((l) => l.level === 50));
      expect(services.current).toBe(good);
      // More events and reloads of the same bad text: no second error.
      expect(watcher.reload('SIGHUP')).toBe(false);
      fs.appendFileSync(file, '');
      fs.utimesSync(file, new Date(), new Date());
      await new Promise((r) => setTimeout(r, 300));
      const errors = lines.filter((l) => l.level === 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.msg).toBe('service file rejected: keeping the services of the last good one');
      expect(String((errors[0]!.err as { message: string }).message)).toMatch(/service name "broken name"/);
      expect(services.current).toBe(good);
      // The file deleted: still the last good services, one more error (a different problem).
      fs.rmSync(file);
      expect(watcher.reload('SIGHUP')).toBe(false);
      expect(lines.filter((l) => l.level === 50)).toHaveLength(2);
      expect(services.current).toBe(good);
      // Fixed: taken.
      fs.writeFileSync(file, '- {name: fixed, cidr: 10.0.0.0/8}\n');
      await until('the fixed services', () => services.current.names.includes('fixed'));
      expect(services.current.names).toEqual(['other', 'flag', 'fixed']);
    } finally {
      watcher.close();
    }
  });

  it('a file emptied for a moment (truncated, then written) never drops the services', async () => {
    const file = tmpFile('services.yaml', YAML_FILE);
    const { services, watcher } = start(file, 'watch');
    const seen: string[][] = [];
    services.onChange((next) => seen.push([...next.names]));
    try {
      // A writer between its truncate and its write: a reload now sees an empty file.
      fs.truncateSync(file, 0);
      expect(watcher.reload('change')).toBe(false);
      expect(watcher.reload('SIGHUP')).toBe(false);
      expect(services.current.names).toEqual(['other', 'flag', 'payments', 'default/db']);
      fs.writeFileSync(file, '- {name: cache, cidr: 10.9.0.0/16}\n');
      await until('the new services', () => services.current.names.includes('cache'));
      expect(seen).toEqual([['other', 'flag', 'cache']]);
    } finally {
      watcher.close();
    }
  });

  it('a file left empty takes effect once it stays empty past the debounce: no services from the file', async () => {
    const file = tmpFile('services.yaml', YAML_FILE);
    const { services, watcher, lines } = start(file, 'poll');
    try {
      fs.writeFileSync(file, '# no services for now\n');
      expect(watcher.reload('SIGHUP')).toBe(false);
      expect(services.current.names).toEqual(['other', 'flag', 'payments', 'default/db']);
      await until('the file emptied', () => services.current.names.length === 2);
      expect(services.current.names).toEqual(['other', 'flag']);
      expect(lines.some((l) => l.msg === 'services reloaded' && l.reason === 'SIGHUP' && l.services === 1)).toBe(true);
    } finally {
      watcher.close();
    }
  });

  it('a reload of an unchanged file changes nothing (SIGHUP path)', () => {
    const file = tmpFile('services.yaml', YAML_FILE);
    const { lines, logger } = capture();
    const first = readServiceFile(file);
    const services = new Services(buildCatalogue([], first.rules));
    const watcher = new ServiceFileWatcher({ file, specs: [], services, logger }, first.text);
    const before = services.current;
    expect(watcher.reload('SIGHUP')).toBe(false);
    expect(services.current).toBe(before);
    fs.writeFileSync(file, '[]');
    expect(watcher.reload('SIGHUP')).toBe(true);
    expect(services.current.size).toBe(0);
    expect(lines.filter((l) => l.msg === 'services reloaded')).toHaveLength(1);
  });
});
