import { describe, expect, it } from 'vitest';
import {
  CGROUP_SHARE,
  cgroupMemoryLimit,
  CONN_FLOOR,
  CONN_MINIMUM,
  DEFAULT_MEMORY_LIMIT,
  defaultMemoryLimit,
  MemoryBudget,
  MemoryKind,
  parseByteSize,
  type Relief,
} from '../../src/tcp/memory-budget.js';

const MiB = 1024 * 1024;

describe('MemoryBudget', () => {
  it('charges and releases by kind; used is the sum', () => {
    const b = new MemoryBudget(64 * MiB);
    b.charge(MemoryKind.RECEIVE, 100);
    b.charge(MemoryKind.SEND, 50);
    expect(b.tryCharge(MemoryKind.REASSEMBLY, 4096, 0)).toBe(true);
    expect(b.used).toBe(4246);
    expect(b.usedBy(MemoryKind.SEND)).toBe(50);
    b.release(MemoryKind.RECEIVE, 100);
    b.release(MemoryKind.SEND, 50);
    b.release(MemoryKind.REASSEMBLY, 4096);
    expect(b.used).toBe(0);
    expect(b.peak).toBe(4246);
    expect(b.releasedTotal).toBe(4246);
  });

  it('admits new connections only below 5/8 of the limit', () => {
    const b = new MemoryBudget(8 * MiB);
    b.charge(MemoryKind.SEND, 5 * MiB - 1);
    expect(b.admits()).toBe(true);
    expect(b.pressure).toBe(false);
    b.charge(MemoryKind.SEND, 1);
    expect(b.admits()).toBe(false);
    expect(b.pressure).toBe(true);
  });

  it('refuses a big holder past 3/4, a small one only past the limit', () => {
    const b = new MemoryBudget(8 * MiB);
    b.charge(MemoryKind.SEND, 6 * MiB - 1000);
    expect(b.tryCharge(MemoryKind.REASSEMBLY, 4096, CONN_FLOOR)).toBe(false);
    expect(b.refused).toBe(1);
    expect(b.tryCharge(MemoryKind.REASSEMBLY, 4096, 0)).toBe(true);
    b.charge(MemoryKind.SEND, b.limit - b.used - 100);
    expect(b.tryCharge(MemoryKind.REASSEMBLY, 4096, 0)).toBe(false);
    expect(b.used).toBe(b.limit - 100);
  });

  it('the per-connection minimum is granted past the limit, and only up to CONN_MINIMUM', () => {
    const b = new MemoryBudget(2 * MiB);
    b.charge(MemoryKind.SEND, 2 * MiB);
    expect(b.chargeMinimum(MemoryKind.RECEIVE, 1000, CONN_MINIMUM - 1000)).toBe(true);
    expect(b.chargeMinimum(MemoryKind.RECEIVE, 1000, CONN_MINIMUM - 999)).toBe(false);
    expect(b.used).toBe(2 * MiB + 1000);
  });

  it('windows stop growing under pressure, except up to the floor (the minimum past 3/4)', () => {
    const b = new MemoryBudget(8 * MiB);
    expect(b.growthCap(10 * MiB)).toBe(Infinity);
    b.charge(MemoryKind.SEND, b.softMark);
    expect(b.growthCap(10)).toBe(CONN_FLOOR);
    expect(b.growthCap(CONN_FLOOR * 3)).toBe(CONN_FLOOR * 3);
    b.charge(MemoryKind.SEND, b.bulkMark - b.used);
    expect(b.growthCap(10)).toBe(CONN_MINIMUM);
  });

  it('pauses big readers under pressure and everyone above the minimum at the limit', () => {
    const b = new MemoryBudget(8 * MiB);
    expect(b.shouldPause(10 * MiB)).toBe(false);
    b.charge(MemoryKind.SEND, b.softMark);
    expect(b.shouldPause(CONN_FLOOR)).toBe(true);
    expect(b.shouldPause(CONN_FLOOR - 1)).toBe(false);
    b.charge(MemoryKind.SEND, b.limit - b.used);
    expect(b.shouldPause(CONN_MINIMUM)).toBe(true);
    expect(b.shouldPause(CONN_MINIMUM - 1)).toBe(false);
  });

  it('tells who waits, once, when used falls below the resume mark', () => {
    const b = new MemoryBudget(8 * MiB);
    let told = 0;
    const r: Relief = { onMemoryRelief: () => told++ };
    b.charge(MemoryKind.SEND, 7 * MiB);
    b.waitForRelief(r);
    b.release(MemoryKind.SEND, 2 * MiB);
    expect(told).toBe(0);
    b.release(MemoryKind.SEND, 2 * MiB);
    expect(told).toBe(1);
    b.release(MemoryKind.SEND, 1 * MiB);
    expect(told).toBe(1);
    b.waitForRelief(r);
    b.cancelRelief(r);
    b.charge(MemoryKind.SEND, 1);
    b.release(MemoryKind.SEND, 1);
    expect(told).toBe(1);
  });
});

describe('--memory-limit sizes and defaults', () => {
  it('parses plain bytes and binary/decimal suffixes', () => {
    expect(parseByteSize('67108864')).toBe(64 * MiB);
    expect(parseByteSize('64MiB')).toBe(64 * MiB);
    expect(parseByteSize('512Mi')).toBeNaN();
    expect(parseByteSize('512M')).toBe(512 * MiB);
    expect(parseByteSize('1GiB')).toBe(1024 * MiB);
    expect(parseByteSize('1.5GiB')).toBe(1536 * MiB);
    expect(parseByteSize('100MB')).toBe(100_000_000);
    expect(parseByteSize('64 kib')).toBe(65536);
    expect(parseByteSize('lots')).toBeNaN();
    expect(parseByteSize('-5')).toBeNaN();
  });

  const files = (m: Record<string, string>) => (p: string) => m[p] ?? null;

  it('cgroup v2 memory.max: a number is the limit, "max" is none', () => {
    expect(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': '536870912\n' }))).toBe(512 * MiB);
    expect(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n' }))).toBeNull();
  });

  it("cgroup v2: the process's own cgroup from /proc/self/cgroup (a systemd service, no cgroup namespace)", () => {
    const read = files({ '/proc/self/cgroup': '0::/system.slice/synfin.service\n', '/sys/fs/cgroup/system.slice/synfin.service/memory.max': '1073741824\n' });
    expect(cgroupMemoryLimit(read)).toBe(1024 * MiB);
    expect(cgroupMemoryLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': '536870912' }))).toBe(512 * MiB);
    expect(cgroupMemoryLimit(files({ '/proc/self/cgroup': '0::/user.slice\n', '/sys/fs/cgroup/user.slice/memory.max': 'max' }))).toBeNull();
  });

  it('cgroup v1 memory.limit_in_bytes: the "unlimited" page-counter value is none', () => {
    expect(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '268435456\n' }))).toBe(256 * MiB);
    expect(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' }))).toBeNull();
    expect(cgroupMemoryLimit(files({}))).toBeNull();
    const read = files({ '/proc/self/cgroup': '4:memory:/process_api/abc\n0::/\n', '/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes': '2147483648\n' });
    expect(cgroupMemoryLimit(read)).toBe(2048 * MiB);
  });

  it('default: half the cgroup limit, else 256 MiB', () => {
    expect(defaultMemoryLimit(files({ '/sys/fs/cgroup/memory.max': '536870912' }))).toEqual({ bytes: 512 * MiB * CGROUP_SHARE, source: 'cgroup' });
    expect(defaultMemoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max' }))).toEqual({ bytes: DEFAULT_MEMORY_LIMIT, source: 'default' });
    expect(DEFAULT_MEMORY_LIMIT).toBe(256 * MiB);
  });
});
