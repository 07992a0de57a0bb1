/**
 * --history and --access-log: from a flag, SYNFIN_HISTORY / SYNFIN_ACCESS_LOG or the config
 * file; a bad value is one line and exit 2.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';

const BIN = path.join(import.meta.dirname, '../../bin/synfin.js');

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-history-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('--history and --access-log', () => {
  it('--history: 10,000 by default, 0 turns it off, from a flag, SYNFIN_HISTORY or the file', () => {
    expect(resolveConfig({}, {}).history).toBe(10_000);
    expect(resolveConfig({ history: '0' }, {}).history).toBe(0);
    expect(resolveConfig({}, { SYNFIN_HISTORY: '250' }).history).toBe(250);
    expect(resolveConfig({}, {}, tmpFile('h.yaml', 'history: 42\n')).history).toBe(42);
    expect(() => resolveConfig({ history: '-1' }, {})).toThrow(/--history: -1 must be an integer ≥ 0/);
    expect(() => resolveConfig({ history: '1.5' }, {})).toThrow(/--history: 1.5 must be an integer ≥ 0/);
    expect(() => resolveConfig({ history: 'lots' }, {})).toThrow(/--history: "lots" is not a number/);
    expect(() => resolveConfig({ history: '2000000' }, {})).toThrow(/--history: 2000000 is out of range \(0-1000000\)/);
    expect(() => resolveConfig({}, { SYNFIN_HISTORY: 'x' })).toThrow(/SYNFIN_HISTORY: "x" is not a number/);
  });

  it('--access-log: off by default, on from the flag, SYNFIN_ACCESS_LOG or the file', () => {
    expect(resolveConfig({}, {}).accessLog).toBe(false);
    expect(resolveConfig({ 'access-log': true as unknown as string }, {}).accessLog).toBe(true);
    expect(resolveConfig({}, { SYNFIN_ACCESS_LOG: 'true' }).accessLog).toBe(true);
    expect(resolveConfig({}, { SYNFIN_ACCESS_LOG: '0' }).accessLog).toBe(false);
    expect(resolveConfig({}, {}, tmpFile('a.yaml', 'access-log: true\n')).accessLog).toBe(true);
    expect(resolveConfig({}, {}, tmpFile('b.yaml', 'accessLog: false\n')).accessLog).toBe(false);
    expect(() => resolveConfig({}, { SYNFIN_ACCESS_LOG: 'maybe' })).toThrow(/SYNFIN_ACCESS_LOG: "maybe" is not true or false/);
  });

  it('a bad --history is one line on stderr and exit 2; the CLI takes --access-log without a value', () => {
    // Needs dist/ (npm run build), as the other CLI tests.
    const bad = spawnSync(process.execPath, [BIN, 'run', '--history', 'many', '--tun', 'sfh0'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(2);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^synfin: --history: "many" is not a number/);
    const help = spawnSync(process.execPath, [BIN, 'run', '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(help.stdout).toMatch(/--history <N>/);
    expect(help.stdout).toMatch(/--access-log\s/);
    const env = spawnSync(process.execPath, [BIN, 'run', '--tun', 'sfh0'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SYNFIN_HISTORY: '-5' } });
    expect(env.status).toBe(2);
    expect(env.stderr.trim()).toMatch(/^synfin: SYNFIN_HISTORY|^synfin: --history: -5 must be an integer ≥ 0$/);
  });
});
