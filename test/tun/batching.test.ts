/**
 * Receive batching on a real device: packets the kernel queued while nobody was reading come out
 * in full batches, and one readable event delivers at most four batches before the event loop
 * gets a turn (fairness).
 */
import { afterEach, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { closeAllTuns, openTunInNetns } from './fixture.js';

const PORT = 5353;

// Sends COUNT UDP datagrams of 100 bytes to PEER:PORT, one after the other.
const UDP_SCRIPT = `
const s = require('dgram').createSocket('udp4');
const count = +process.env.COUNT; let n = 0;
function next() {
  if (n === count) { s.close(); console.log(JSON.stringify({ sent: n })); return; }
  s.send(Buffer.alloc(100, 7), +process.env.PORT, process.env.PEER, (e) => { if (e) throw e; n++; next(); });
}
next();
`;

/** Counts IPv4/UDP packets to PORT in a batch. */
function udpToPort(buf: Buffer, off: number, len: number): boolean {
  return len >= 28 && buf[off]! >> 4 === 4 && buf[off + 9] === 17 && buf.readUInt16BE(off + 22) === PORT;
}

afterEach(() => {
  closeAllTuns();
  destroyAllNetns();
});

describeIfTun('TUN receive batching', () => {
  it.each([false, true])('queued packets arrive in full batches of batch size (vnetHdr %s)', async (vnetHdr) => {
    const { tun, ns, peerAddr } = openTunInNetns({ vnetHdr, batchSize: 64 });
    const sent = await ns.exec(process.execPath, ['-e', UDP_SCRIPT], {
      env: { ...process.env, PEER: peerAddr, PORT: String(PORT), COUNT: '200' },
    });
    expect(sent.stdout.trim()).toBe('{"sent":200}');

    const counts: number[] = [];
    let udp = 0;
    await new Promise<void>((resolve) => {
      tun.start((b) => {
        counts.push(b.count);
        for (let i = 0; i < b.count; i++) {
          if (udpToPort(b.buffer, b.offset[i]!, b.length[i]!)) {
            expect(b.length[i]).toBe(20 + 8 + 100);
            udp++;
          }
        }
        if (udp === 200) resolve();
      });
    });
    expect(counts[0]).toBe(64);
    expect(Math.max(...counts)).toBeLessThanOrEqual(64);
    expect(tun.counters.rxPackets).toBe(counts.reduce((a, b) => a + b, 0));
  });

  it('one readable event delivers at most four batches then yields', async () => {
    const { tun, ns, peerAddr } = openTunInNetns({ vnetHdr: true, batchSize: 32 });
    await ns.exec(process.execPath, ['-e', UDP_SCRIPT], {
      env: { ...process.env, PEER: peerAddr, PORT: String(PORT), COUNT: '300' },
    });

    let batches = 0;
    let batchesBeforeImmediate = -1;
    let udp = 0;
    await new Promise<void>((resolve) => {
      tun.start((b) => {
        batches++;
        // Runs in the check phase right after the poll callback that delivered this batch returns.
        if (batches === 1) setImmediate(() => (batchesBeforeImmediate = batches));
        for (let i = 0; i < b.count; i++) if (udpToPort(b.buffer, b.offset[i]!, b.length[i]!)) udp++;
        if (udp === 300) resolve();
      });
    });
    expect(batchesBeforeImmediate).toBe(4);
    expect(batches).toBeGreaterThan(4);
  });
});
