/**
 * Opening TUN devices: names, attaching to existing devices, and how each failure is reported.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  IpCommandError,
  SynfinError,
  TunBusyError,
  TunNameTooLongError,
  TunNoDeviceError,
  TunOpenError,
  TunPermissionError,
} from '../../src/errors.js';
import { ADDON_PATH, Tun, tunOpenError } from '../../src/tun/index.js';
import { NetNs, destroyAllNetns, ipSync, leftovers, trackLink, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { closeAllTuns, openTun } from './fixture.js';

function linkExists(name: string): boolean {
  return (JSON.parse(ipSync(['-j', 'link', 'show'])) as Array<{ ifname: string }>).some((l) => l.ifname === name);
}

function sysError(code: string, syscall: string): NodeJS.ErrnoException {
  const e = new Error(`${syscall} x: ${code}`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  return e;
}

describe('tunOpenError maps errno codes to typed errors', () => {
  it.each([
    ['ENOENT', 'open', TunNoDeviceError, 'ERR_TUN_NO_DEVICE'],
    ['EACCES', 'open', TunPermissionError, 'ERR_TUN_PERMISSION'],
    ['EPERM', 'TUNSETIFF', TunPermissionError, 'ERR_TUN_PERMISSION'],
    ['ENAMETOOLONG', 'TUNSETIFF', TunNameTooLongError, 'ERR_TUN_NAME_TOO_LONG'],
    ['EBUSY', 'TUNSETIFF', TunBusyError, 'ERR_TUN_BUSY'],
    ['EINVAL', 'TUNSETIFF', TunOpenError, 'ERR_TUN_OPEN'],
    ['EMFILE', 'open', TunOpenError, 'ERR_TUN_OPEN'],
  ] as const)('errno_%s_from_%s_becomes_typed_error', (code, syscall, cls, errCode) => {
    const cause = sysError(code, syscall);
    const err = tunOpenError(cause, 'synfin0');
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(SynfinError);
    expect((err as SynfinError).code).toBe(errCode);
    expect((err as SynfinError).cause).toBe(cause);
    expect(err.message).toContain('synfin0');
    expect(err.message).not.toContain('\n');
  });

  it('error without errno code is returned unchanged', () => {
    const e = new TypeError('name must be a string');
    expect(tunOpenError(e, 'x')).toBe(e);
  });

  it('permission message says what is needed', () => {
    expect(tunOpenError(sysError('EPERM', 'TUNSETIFF'), 'synfin0').message).toBe(
      'cannot open TUN device synfin0: permission denied (TUNSETIFF EPERM); run as root or with CAP_NET_ADMIN',
    );
  });
});

describe('IpCommandError', () => {
  it('message is one line with command and stderr', () => {
    const e = new IpCommandError(['link', 'set', 'dev', 'nope0', 'up'], 'Cannot find device "nope0"', 1);
    expect(e.code).toBe('ERR_IP_COMMAND');
    expect(e.message).toBe('ip link set dev nope0 up: Cannot find device "nope0"');
  });
});

afterEach(() => {
  closeAllTuns();
  destroyAllNetns();
});

describeIfTun('Tun.open on a real device', () => {
  it('name of 16 bytes is rejected with ERR_TUN_NAME_TOO_LONG', () => {
    expect(() => Tun.open({ name: 'a23456789012345x' })).toThrow(TunNameTooLongError);
    try {
      Tun.open({ name: 'a23456789012345x' });
    } catch (err) {
      expect((err as SynfinError).code).toBe('ERR_TUN_NAME_TOO_LONG');
    }
  });

  it('name of 15 bytes is accepted', () => {
    const name = uniqueIfName('s');
    expect(name).toHaveLength(15);
    const tun = openTun({ name });
    expect(tun.name).toBe(name);
    expect(linkExists(name)).toBe(true);
  });

  it('open creates the device and close removes it', () => {
    const tun = openTun({ vnetHdr: true });
    expect(tun.fd).toBeGreaterThan(2);
    expect(tun.vnetHdr).toBe(true);
    expect(linkExists(tun.name)).toBe(true);
    tun.close();
    expect(tun.fd).toBe(-1);
    expect(linkExists(tun.name)).toBe(false);
  });

  it('close twice is harmless', () => {
    const tun = openTun();
    tun.close();
    expect(() => tun.close()).not.toThrow();
    expect(tun.isClosed).toBe(true);
  });

  it('percent d in the name is expanded by the kernel', () => {
    const prefix = uniqueIfName('sfp').slice(0, 12);
    const tun = openTun({ name: `${prefix}%d` });
    expect(tun.name).toMatch(new RegExp(`^${prefix}\\d+$`));
  });

  it('second open of an attached device fails with ERR_TUN_BUSY', () => {
    const first = openTun();
    let err: unknown;
    try {
      openTun({ name: first.name });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunBusyError);
    expect((err as SynfinError).code).toBe('ERR_TUN_BUSY');
    expect((err as Error).message).toBe(
      `TUN device ${first.name} is busy: another process is attached to it`,
    );
  });

  it('open after the first holder closed creates the device again', () => {
    const first = openTun();
    const name = first.name;
    first.close();
    const second = openTun({ name });
    expect(second.name).toBe(name);
    expect(linkExists(name)).toBe(true);
  });

  it('open attaches to a persistent device and close leaves it', () => {
    const name = uniqueIfName('sfq');
    trackLink(name);
    ipSync(['tuntap', 'add', 'dev', name, 'mode', 'tun']);
    const tun = openTun({ name, vnetHdr: true });
    expect(tun.name).toBe(name);
    tun.close();
    expect(linkExists(name)).toBe(true);
    // It can be attached again, now without vnet headers.
    const again = openTun({ name, vnetHdr: false });
    expect(again.vnetHdr).toBe(false);
    again.close();
    ipSync(['link', 'delete', 'dev', name]);
    expect(linkExists(name)).toBe(false);
  });

  it('name of an interface that is not tun fails with ERR_TUN_OPEN', () => {
    expect(() => openTun({ name: 'lo' })).toThrow(TunOpenError);
  });

  it('mtu address route and up are configured through ip in the devices namespace', () => {
    const tun = openTun();
    const ns = NetNs.create('cfg');
    tun.moveToNetns(ns.name);
    expect(tun.netns).toBe(ns.name);
    tun.setMtu(1400);
    expect(tun.mtu).toBe(1400);
    tun.addAddress('198.18.200.1/32');
    tun.addAddress('fd00:5f:1::1/64');
    tun.up();
    tun.addRoute('198.18.201.0/24');
    tun.addRoute('fd00:5f:2::/64');
    const link = JSON.parse(ns.ip(['-j', 'addr', 'show', 'dev', tun.name])) as Array<{
      flags: string[];
      addr_info: Array<{ local: string }>;
    }>;
    expect(link[0]!.flags).toContain('UP');
    expect(link[0]!.addr_info.map((a) => a.local)).toEqual(expect.arrayContaining(['198.18.200.1', 'fd00:5f:1::1']));
    expect(ns.ip(['route', 'show', 'dev', tun.name])).toContain('198.18.201.0/24');
    expect(ns.ip(['-6', 'route', 'show', 'dev', tun.name])).toContain('fd00:5f:2::/64');
    tun.down();
    const after = JSON.parse(ns.ip(['-j', 'link', 'show', 'dev', tun.name])) as Array<{ flags: string[] }>;
    expect(after[0]!.flags).not.toContain('UP');
  });

  it('ip options netns overrides the devices namespace', () => {
    const tun = openTun();
    const ns = NetNs.create('cfg');
    ns.adoptLink(tun.name);
    expect(() => tun.setMtu(1300)).toThrow(IpCommandError); // still looked up in the current namespace
    tun.setMtu(1300, { netns: ns.name });
    expect(ns.ip(['link', 'show', 'dev', tun.name])).toContain('mtu 1300');
  });

  it('ip failure throws ERR_IP_COMMAND with stderr on one line', () => {
    const tun = openTun();
    let err: unknown;
    try {
      tun.addAddress('not-an-address');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpCommandError);
    const e = err as IpCommandError;
    expect(e.code).toBe('ERR_IP_COMMAND');
    expect(e.message).toMatch(new RegExp(`^ip addr add not-an-address dev ${tun.name}: .+`));
    expect(e.message).not.toContain('\n');
    expect(e.stderr.length).toBeGreaterThan(0);
  });
});

/**
 * Opening the device from a child process with fewer rights: the child loads the addon (copied to
 * a directory every user can read) and prints the error's code and syscall as JSON.
 */
describeIfTun('Tun.open permission and missing-device errors (child processes)', () => {
  const OPEN_SCRIPT = `
const addon = require(process.env.ADDON);
try { addon.open(process.env.NAME, { vnetHdr: true }).close(); console.log(JSON.stringify({ ok: true })); }
catch (e) { console.log(JSON.stringify({ code: e.code, syscall: e.syscall, message: e.message })); }
`;
  let dir = '';
  let addon = '';

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-tun-'));
    fs.chmodSync(dir, 0o755);
    addon = path.join(dir, 'synfin.node');
    fs.copyFileSync(ADDON_PATH, addon);
    fs.chmodSync(addon, 0o755);
  });

  afterAll(() => {
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  function runChild(prefix: string[], name: string): Promise<{ code?: string; syscall?: string; ok?: boolean }> {
    const [file, ...args] = [...prefix, process.execPath, '-e', OPEN_SCRIPT];
    return new Promise((resolve, reject) => {
      execFile(file!, args, { env: { ...process.env, ADDON: addon, NAME: name }, cwd: dir }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${prefix.join(' ')} failed: ${String(err)} ${stderr}`));
        else resolve(JSON.parse(stdout.trim()) as { code?: string; syscall?: string });
      });
    });
  }

  it('unprivileged user gets eacces or eperm mapped to ERR_TUN_PERMISSION', async () => {
    // 65534 = nobody / nogroup. Where /dev/net/tun is 0600 the open() fails; where it is 0666
    // (common with udev) the open works and creating the device needs CAP_NET_ADMIN.
    const worldRw = (fs.statSync('/dev/net/tun').mode & 0o006) === 0o006;
    const r = await runChild(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], uniqueIfName('sfu'));
    expect(r).toMatchObject(worldRw ? { code: 'EPERM', syscall: 'TUNSETIFF' } : { code: 'EACCES', syscall: 'open' });
    expect(tunOpenError(Object.assign(new Error('x'), r), 'x')).toBeInstanceOf(TunPermissionError);
  });

  it('root without cap net admin gets eperm from tunsetiff mapped to ERR_TUN_PERMISSION', async () => {
    const name = uniqueIfName('sfc');
    const r = await runChild(['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin'], name);
    expect(r).toMatchObject({ code: 'EPERM', syscall: 'TUNSETIFF' });
    const err = tunOpenError(Object.assign(new Error('x'), r), name);
    expect(err).toBeInstanceOf(TunPermissionError);
    expect(linkExists(name)).toBe(false);
  });

  it('missing dev net tun gives enoent mapped to ERR_TUN_NO_DEVICE', async () => {
    // A private mount namespace where /dev/net is an empty tmpfs.
    const r = await runChild(
      ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$0" "$@"'],
      uniqueIfName('sfn'),
    );
    expect(r).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect(tunOpenError(Object.assign(new Error('x'), r), 'x')).toBeInstanceOf(TunNoDeviceError);
  });

  it('no device or namespace of this file is left behind', () => {
    closeAllTuns();
    destroyAllNetns();
    expect(leftovers()).toEqual([]);
  });
});
