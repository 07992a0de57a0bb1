import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, envName, resolveConfig } from '../../src/config.js';

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-config-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('resolveConfig', () => {
  it('gives the contract defaults', () => {
    const c = resolveConfig({}, {});
    expect(c).toEqual(DEFAULT_CONFIG);
    expect(c.tun).toBe('synfin0');
    expect(c.listenHost).toBe('127.0.0.1');
    expect(c.listenPort).toBe(9477);
    expect(c.mslSeconds).toBe(30);
  });

  it('reads every option from its SYNFIN_ variable', () => {
    expect(envName('connect-timeout')).toBe('SYNFIN_CONNECT_TIMEOUT');
    const c = resolveConfig({}, {
      SYNFIN_TUN: 'tun7',
      SYNFIN_LISTEN: '0.0.0.0:9100',
      SYNFIN_MSL: '0.5',
      SYNFIN_ADDRESS: '198.18.0.1/15, fd00::1/64',
      SYNFIN_DENY: '169.254.169.254/32',
    });
    expect(c.tun).toBe('tun7');
    expect(c.listenHost).toBe('0.0.0.0');
    expect(c.listenPort).toBe(9100);
    expect(c.mslSeconds).toBe(0.5);
    expect(c.addresses).toEqual(['198.18.0.1/15', 'fd00::1/64']);
    expect(c.deny).toEqual(['169.254.169.254/32']);
  });

  it('takes flag over environment over file', () => {
    const file = tmpFile('c.yaml', 'msl: 7\nidle-timeout: 9\nconnectTimeout: 3\nlog-level: warn\n');
    const c = resolveConfig({ msl: '1' }, { SYNFIN_IDLE_TIMEOUT: '8' }, file);
    expect(c.mslSeconds).toBe(1);
    expect(c.idleTimeoutSeconds).toBe(8);
    expect(c.connectTimeoutSeconds).toBe(3);
    expect(c.logLevel).toBe('warn');
  });

  it.each([
    [{ tun: 'a-name-that-is-way-too-long' }, /--tun: .* is not a valid interface name/],
    [{ address: ['198.18.0.1'] }, /--address: "198.18.0.1" needs a prefix length/],
    [{ address: ['300.1.1.1/8'] }, /--address: "300.1.1.1\/8" is not an IP address/],
    [{ route: ['10.0.0.0/40'] }, /--route: .* bad prefix length/],
    [{ listen: '127.0.0.1' }, /--listen: "127.0.0.1" needs a port/],
    [{ listen: 'example:80' }, /--listen: "example" is not an IP address/],
    [{ msl: 'soon' }, /--msl: "soon" is not a number/],
    [{ msl: '0' }, /--msl: 0 must be > 0/],
    [{ mtu: '100' }, /--mtu: 100 is out of range/],
    [{ 'max-connections': '1.5' }, /--max-connections: 1.5 must be an integer/],
    [{ 'log-level': 'loud' }, /--log-level: "loud" is not one of/],
    [{ 'upstream-bind': 'x' }, /--upstream-bind: "x" is not an IP address/],
    [{ deny: ['1.2.3.4/99'] }, /--deny: "1.2.3.4\/99" has a bad prefix length/],
    [{ 'api-addresses': 'public' }, /--api-addresses: "public" is not one of loopback, all, none/],
  ])('rejects %j with one clear line', (flags, message) => {
    let err: Error | undefined;
    try {
      resolveConfig(flags as Record<string, string | string[]>, {});
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeDefined();
    expect((err as { code?: string }).code).toBe('ERR_CONFIG');
    expect(err!.message).toMatch(message);
    expect(err!.message).not.toContain('\n');
  });

  it('--api-addresses: loopback by default, all or none from a flag, SYNFIN_API_ADDRESSES or the file', () => {
    expect(resolveConfig({}, {}).apiAddresses).toBe('loopback');
    expect(resolveConfig({ 'api-addresses': 'none' }, {}).apiAddresses).toBe('none');
    expect(envName('api-addresses')).toBe('SYNFIN_API_ADDRESSES');
    expect(resolveConfig({}, { SYNFIN_API_ADDRESSES: 'all' }).apiAddresses).toBe('all');
    expect(resolveConfig({}, {}, tmpFile('c.yaml', 'api-addresses: none\n')).apiAddresses).toBe('none');
    expect(() => resolveConfig({}, { SYNFIN_API_ADDRESSES: 'everyone' })).toThrow(/^--api-addresses: "everyone" is not one of loopback, all, none$/);
  });

  it('names the variable when the environment is wrong', () => {
    expect(() => resolveConfig({}, { SYNFIN_MSL: 'x' })).toThrow(/SYNFIN_MSL: "x" is not a number/);
  });

  it('reports unreadable, invalid and unknown config files', () => {
    expect(() => resolveConfig({}, {}, '/nonexistent/synfin.yaml')).toThrow(/--config: cannot read \/nonexistent\/synfin.yaml \(ENOENT\)/);
    expect(() => resolveConfig({}, {}, tmpFile('bad.yaml', 'msl: [1,\n'))).toThrow(/is not valid YAML/);
    expect(() => resolveConfig({}, {}, tmpFile('u.yaml', 'colour: blue\n'))).toThrow(/unknown option "colour"/);
    expect(() => resolveConfig({}, {}, tmpFile('l.yaml', '- 1\n'))).toThrow(/must hold a mapping/);
  });

  it('--memory-limit: bytes or a size with a unit, from a flag, SYNFIN_MEMORY_LIMIT or the file; at least 1 MiB', () => {
    expect(resolveConfig({}, {}).memoryLimit).toBeNull();
    expect(resolveConfig({ 'memory-limit': '64MiB' }, {}).memoryLimit).toBe(64 * 1024 * 1024);
    expect(resolveConfig({}, { SYNFIN_MEMORY_LIMIT: '536870912' }).memoryLimit).toBe(512 * 1024 * 1024);
    expect(resolveConfig({}, {}, tmpFile('m.yaml', 'memory-limit: 1GiB\n')).memoryLimit).toBe(1024 * 1024 * 1024);
    expect(() => resolveConfig({ 'memory-limit': 'lots' }, {})).toThrow(/--memory-limit: "lots" is not a size/);
    expect(() => resolveConfig({ 'memory-limit': '1000' }, {})).toThrow(/--memory-limit: 1000 must be an integer ≥ 1048576/);
  });
});
