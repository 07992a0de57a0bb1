/**
 * synfin_ephemeral_ports: the size of net.ipv4.ip_local_port_range, read from synfin's own
 * network namespace (the sysctl is per namespace), so that port-exhaustion alerts compare against
 * the range the upstream sockets really draw from.
 */
import { describe, expect, it } from 'vitest';
import { ephemeralPortCount, LOCAL_PORT_RANGE_PATH } from '../../src/observability/process-metrics.js';

describe('ephemeralPortCount', () => {
  it('counts both ends of the range, as the kernel writes it (tab-separated)', () => {
    expect(ephemeralPortCount((p) => (p === LOCAL_PORT_RANGE_PATH ? '32768\t60999\n' : ''))).toBe(28_232);
    expect(ephemeralPortCount(() => '20000 20999')).toBe(1000);
    expect(ephemeralPortCount(() => '1024\t1024\n')).toBe(1);
  });

  it('is null when the file cannot be read or does not hold a range', () => {
    expect(
      ephemeralPortCount(() => {
        throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      }),
    ).toBeNull();
    expect(ephemeralPortCount(() => 'banana')).toBeNull();
    expect(ephemeralPortCount(() => '61000 32768')).toBeNull();
  });

  it("reads this machine's range when the file exists", () => {
    const n = ephemeralPortCount();
    if (process.platform !== 'linux') return expect(n).toBeNull();
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThanOrEqual(65_536);
  });
});
