/**
 * The capture ring (src/stack/capture.ts): records kept in order, the oldest overwritten when it
 * is full, snaplen applied after the headers of both families, records tagged with their
 * connection by the stack in both directions, and the pcap files (src/http/capture.ts) read back
 * by tcpdump.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pcapOf } from '../../src/http/capture.js';
import {
  CAPTURE_IN,
  CAPTURE_MIN_BYTES,
  CAPTURE_OUT,
  CAPTURE_RECORD_HEADER,
  CaptureControl,
  CaptureRing,
  captureLength,
  type CaptureRecord,
} from '../../src/stack/capture.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';
import { OutSegment, TcpFlag } from '../../src/wire/segment.js';
import { APP_ISN, appPacket, stackHarness } from './stack-harness.js';

/** An IPv4 or IPv6 TCP packet with `payload` bytes of value `fill`. */
function tcpPacket(family: 4 | 6, payload: number, fill = 0xab, flags: number = TcpFlag.ACK | TcpFlag.PSH, seq = 1000): Buffer {
  const out = new OutSegment();
  out.seq = seq;
  out.ack = 2000;
  out.flags = flags;
  out.window = 1000;
  if (flags & TcpFlag.SYN) out.options.mss = 1460;
  const buf = Buffer.alloc(60 + 60 + payload);
  const src = family === 4 ? Uint32Array.of(0, 0, 0, 0xc6120001) : Uint32Array.of(0xfd000000, 0, 0, 1);
  const dst = family === 4 ? Uint32Array.of(0, 0, 0, 0xc6120102) : Uint32Array.of(0xfd000000, 0, 0, 2);
  const hl = writeTcpPacket(buf, 0, family, src, dst, 40000, 80, out, payload);
  buf.fill(fill, hl, hl + payload);
  finishTcpChecksum(buf, 0, 'full');
  return buf.subarray(0, hl + payload);
}

function records(ring: CaptureRing, from = 0): Array<Omit<CaptureRecord, 'data'> & { data: Buffer }> {
  const out: Array<Omit<CaptureRecord, 'data'> & { data: Buffer }> = [];
  ring.forEach(from, (r) => out.push({ ...r, data: Buffer.from(r.data) }));
  return out;
}

/** Write a record whose bytes are `capLen` copies of its index (mod 251) and whose conn id is the index. */
function writeNumbered(ring: CaptureRing, i: number, capLen: number): void {
  const at = ring.reserve(CAPTURE_IN, i, capLen + 7, capLen);
  ring.bytes.fill(i % 251, at, at + capLen);
}

describe('captureLength', () => {
  it('keeps the IPv4 and TCP headers (options included) plus snaplen bytes of payload', () => {
    const data = tcpPacket(4, 1000);
    expect(captureLength(data, 0, data.length, 128)).toBe(20 + 20 + 128);
    expect(captureLength(data, 0, data.length, 0)).toBe(40);
    const syn = tcpPacket(4, 0, 0, TcpFlag.SYN);
    expect(syn.length).toBeGreaterThan(40);
    expect(captureLength(syn, 0, syn.length, 128)).toBe(syn.length);
  });

  it('keeps the IPv6 header and TCP header plus snaplen bytes of payload', () => {
    const data = tcpPacket(6, 1000);
    expect(captureLength(data, 0, data.length, 128)).toBe(40 + 20 + 128);
    const small = tcpPacket(6, 50);
    expect(captureLength(small, 0, small.length, 128)).toBe(small.length);
  });
});

describe('CaptureRing', () => {
  it('recordIn stores time, direction, original length and the first bytes', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 16);
    // The ring's clock is the thread's monotonic clock from its wall-clock origin
    // (captureClockUs): Date.now() drifts from it by milliseconds in a long-lived process when the
    // system clock is slewed (seen: 6.9 ms in CI), so the bounds come from the same clock.
    const now = () => (performance.timeOrigin + performance.now()) * 1000;
    const before = now();
    const p = tcpPacket(4, 500, 0x5a);
    ring.recordIn(p, 0, p.length);
    const [r] = records(ring);
    expect(r!.direction).toBe(CAPTURE_IN);
    expect(r!.origLen).toBe(p.length);
    expect(r!.data.equals(p.subarray(0, 40 + 16))).toBe(true);
    expect(r!.timeUs).toBeGreaterThanOrEqual(before - 1000);
    expect(r!.timeUs).toBeLessThanOrEqual(now() + 1000);
    // And it is wall-clock time: within a second of Date.now().
    expect(Math.abs(r!.timeUs - Date.now() * 1000)).toBeLessThan(1_000_000);
  });

  it('wraps and overwrites the oldest records first, keeping the newest in order', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    const n = 5000;
    for (let i = 0; i < n; i++) writeNumbered(ring, i, 40 + ((i * 37) % 170));
    const kept = records(ring);
    // A contiguous run ending at the last one written.
    expect(kept.at(-1)!.connId).toBe(n - 1);
    kept.forEach((r, k) => {
      expect(r.connId).toBe(kept[0]!.connId + k);
      expect(r.data.length).toBe(40 + ((r.connId * 37) % 170));
      expect(r.data.every((b) => b === r.connId % 251)).toBe(true);
      expect(r.origLen).toBe(r.data.length + 7);
    });
    expect(ring.firstNumber).toBe(kept[0]!.connId);
    expect(ring.overwritten).toBe(n - kept.length);
    // Nearly the whole buffer is in use: at most two records' worth is lost at the wrap.
    const used = kept.reduce((s, r) => s + ((CAPTURE_RECORD_HEADER + r.data.length + 3) & ~3), 0);
    expect(used).toBeGreaterThan(CAPTURE_MIN_BYTES - 2 * (CAPTURE_RECORD_HEADER + 212));
    expect(used).toBeLessThanOrEqual(CAPTURE_MIN_BYTES);
  });

  it('forEach from a record number visits only the newer ones (what a live reader does)', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    for (let i = 0; i < 10; i++) writeNumbered(ring, i, 60);
    const mark = ring.nextNumber;
    for (let i = 10; i < 15; i++) writeNumbered(ring, i, 60);
    expect(records(ring, mark).map((r) => r.connId)).toEqual([10, 11, 12, 13, 14]);
    expect(ring.forEach(ring.nextNumber, () => {})).toBe(ring.nextNumber);
  });

  it('keeps every record intact for any sequence of sizes (property: 1-3000 records of 0-70,000 bytes)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 70_000 })), { minLength: 1, maxLength: 3000, size: 'max' }), (sizes) => {
        const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
        sizes.forEach((len, i) => writeNumbered(ring, i, len));
        const kept = records(ring);
        expect(kept.length).toBeGreaterThan(0);
        expect(kept.at(-1)!.connId).toBe(sizes.length - 1);
        kept.forEach((r, k) => {
          expect(r.connId).toBe(kept[0]!.connId + k);
          expect(r.data.length).toBe(sizes[r.connId]);
          expect(r.data.every((b) => b === r.connId % 251)).toBe(true);
        });
        expect(ring.overwritten + kept.length).toBe(sizes.length);
      }),
      { numRuns: 50 },
    );
  });

  it('a reader going on from where it stopped sees each record once, in order, while the ring wraps under it (property: 1-4000 writes, reads between)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ len: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20_000 })), read: fc.nat(99) }), { minLength: 1, maxLength: 4000, size: 'max' }),
        (steps) => {
          const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
          let cursor = 0;
          const seen: number[] = [];
          steps.forEach((step, i) => {
            writeNumbered(ring, i, step.len);
            // Now and then (sometimes after the ring went round more than once) a reader takes
            // what is new, all at once or in slices of 3 records.
            if (step.read < 2) {
              const max = step.read === 0 ? Infinity : 3;
              while (cursor < ring.nextNumber) {
                const from = Math.max(cursor, ring.firstNumber);
                const got: number[] = [];
                cursor = ring.forEach(cursor, (r) => got.push(r.connId), -1, max);
                expect(got).toEqual(Array.from({ length: cursor - from }, (_, k) => from + k));
                seen.push(...got);
              }
            }
          });
          // Strictly increasing: nothing seen twice, nothing out of order.
          for (let k = 1; k < seen.length; k++) expect(seen[k]!).toBeGreaterThan(seen[k - 1]!);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a reader that stopped where the ring wrapped resumes at the right record after its wrap marker was overwritten', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    let i = 0;
    // Fill to 2,000 bytes before the end, read everything: the reader stops at the write position.
    while (CAPTURE_MIN_BYTES - ring.nextNumber * 1028 > 2000 + 1028) writeNumbered(ring, i++, 1000);
    let cursor = ring.forEach(0, () => {});
    expect(cursor).toBe(i);
    // The next record does not fit: it goes to the start, a wrap marker where the reader stopped.
    writeNumbered(ring, i++, 3000);
    // Small records until the older ones are gone, then two more over the old marker: record
    // `cursor`, at the start, is still kept.
    while (ring.firstNumber < cursor) writeNumbered(ring, i++, 800);
    writeNumbered(ring, i++, 800);
    writeNumbered(ring, i++, 800);
    expect(ring.holds(cursor)).toBe(true);
    const got: number[] = [];
    const from = ring.firstNumber;
    expect(from).toBe(cursor);
    cursor = ring.forEach(cursor, (r) => got.push(r.connId));
    expect(got).toEqual(Array.from({ length: i - from }, (_, k) => from + k));
  });

  it('copyIn copies any length from any source offset exactly (word copies up to 256 bytes, Buffer copies beyond)', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    const src = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7 + 3) & 0xff));
    for (const len of [0, 1, 3, 4, 5, 52, 255, 256, 257, 600]) {
      for (const off of [0, 1, 2, 3, 17]) {
        const at = ring.reserve(CAPTURE_IN, 1, len, len);
        ring.copyIn(at, src, off, len);
        expect(ring.bytes.subarray(at, at + len).equals(src.subarray(off, off + len)), `len ${len} off ${off}`).toBe(true);
      }
    }
  });

  it('visits only the records of one connection when asked', () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    for (let i = 0; i < 300; i++) {
      const at = ring.reserve(CAPTURE_IN, i % 3, 10, 10);
      ring.bytes.fill(i % 251, at, at + 10);
    }
    const got: number[] = [];
    ring.forEach(0, (r) => got.push(r.data[0]!), 2);
    expect(got).toEqual(Array.from({ length: 100 }, (_, k) => (3 * k + 2) % 251));
  });
});

describe('the stack records both directions, tagged with the connection', () => {
  it('SYN, SYN-ACK, ACK, FIN exchange: every packet of the connection carries its id; a stray RST has none', () => {
    const h = stackHarness();
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    h.stack.setCapture(ring);
    const { conn, ourIss } = h.establish({ srcPort: 40001 });
    h.closeToTimeWait(conn, ourIss, { srcPort: 40001 });
    // A segment for no connection: answered with RST, neither tagged.
    h.send(appPacket({ seq: 5, ack: 7, flags: TcpFlag.ACK, srcPort: 40999 }));
    const all = records(ring);
    const mine = all.filter((r) => r.connId === conn.id);
    const flags = mine.map((r) => `${r.direction === CAPTURE_IN ? 'in' : 'out'}:${r.data[20 + 13]}`);
    expect(flags).toEqual([
      `in:${TcpFlag.SYN}`,
      `out:${TcpFlag.SYN | TcpFlag.ACK}`,
      `in:${TcpFlag.ACK}`,
      `out:${TcpFlag.FIN | TcpFlag.ACK}`,
      `in:${TcpFlag.FIN | TcpFlag.ACK}`,
      `out:${TcpFlag.ACK}`,
    ]);
    const stray = all.filter((r) => r.connId === 0);
    expect(stray.map((r) => r.direction)).toEqual([CAPTURE_IN, CAPTURE_OUT]);
    expect(stray[1]!.data[20 + 13]! & TcpFlag.RST).toBe(TcpFlag.RST);
    // The SYN's first sequence number as the app sent it.
    expect(mine[0]!.data.readUInt32BE(24)).toBe(APP_ISN);
    expect(mine[2]!.data.readUInt32BE(24)).toBe(seqAdd(APP_ISN, 1));
  });

  it('captures nothing once the ring is taken away', () => {
    const h = stackHarness();
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 128);
    h.stack.setCapture(ring);
    h.establish({ srcPort: 40002 });
    const n = ring.nextNumber;
    expect(n).toBe(3);
    h.stack.setCapture(null);
    h.establish({ srcPort: 40003 });
    expect(ring.nextNumber).toBe(n);
  });
});

describe('CaptureControl', () => {
  function sink() {
    const calls: Array<CaptureRing | null> = [];
    return { calls, setCapture: (r: CaptureRing | null) => calls.push(r) };
  }

  it('allocates no ring when capture is off, and frees it when turned off', () => {
    const s = sink();
    const c = new CaptureControl(s, { bufferBytes: 0, snaplen: 128 });
    expect(c.ring).toBeNull();
    expect(s.calls).toEqual([]);
    c.configure({ enabled: true, bufferBytes: 1 << 20, snaplen: 64 });
    expect(c.ring!.size).toBe(1 << 20);
    expect(c.ring!.snaplen).toBe(64);
    expect(s.calls).toEqual([c.ring]);
    c.configure({ enabled: false });
    expect(c.ring).toBeNull();
    expect(s.calls.at(-1)).toBeNull();
  });

  it('a live capture turns capture on for its duration when it was off', () => {
    const s = sink();
    const c = new CaptureControl(s, { bufferBytes: 0, snaplen: 128 });
    const ring = c.acquireLive();
    expect(c.ring).toBe(ring);
    expect(c.enabled).toBe(false);
    c.releaseLive();
    expect(c.ring).toBeNull();
    // On by option: a live capture shares the ring and leaves it on.
    const on = new CaptureControl(sink(), { bufferBytes: 1 << 20, snaplen: 128 });
    const r2 = on.ring;
    expect(on.acquireLive()).toBe(r2);
    on.releaseLive();
    expect(on.ring).toBe(r2);
  });
});

describe('pcap files', () => {
  it("tcpdump reads IPv4 and IPv6 packets back, one connection at a time", async () => {
    const ring = new CaptureRing(CAPTURE_MIN_BYTES, 32);
    const packets = [
      { conn: 1, p: tcpPacket(4, 0, 0, TcpFlag.SYN, 111) },
      { conn: 2, p: tcpPacket(6, 0, 0, TcpFlag.SYN, 222) },
      { conn: 1, p: tcpPacket(4, 1000, 0x41, TcpFlag.ACK | TcpFlag.PSH, 112) },
      { conn: 2, p: tcpPacket(6, 300, 0x42, TcpFlag.ACK | TcpFlag.PSH, 223) },
    ];
    for (const { conn, p } of packets) {
      const n = ring.recordIn(p, 0, p.length);
      ring.tagConnection(n, ring.lastOffset, conn);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-pcap-'));
    try {
      const read = async (id: number): Promise<string[]> => {
        const file = path.join(dir, `c${id}.pcap`);
        fs.writeFileSync(file, (await pcapOf(ring, id)).file);
        return execFileSync('tcpdump', ['-r', file, '-nn', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .trim()
          .split('\n');
      };
      const one = await read(1);
      expect(one).toHaveLength(2);
      expect(one[0]).toMatch(/IP 198\.18\.0\.1\.40000 > 198\.18\.1\.2\.80: Flags \[S\], seq 111,.*length 0/);
      // The original length is reported though only 32 payload bytes were kept.
      expect(one[1]).toMatch(/IP 198\.18\.0\.1\.40000 > 198\.18\.1\.2\.80: Flags \[P\.\], seq 112:1112, ack 2000,.*length 1000/);
      const two = await read(2);
      expect(two).toHaveLength(2);
      expect(two[0]).toMatch(/IP6 fd00::1\.40000 > fd00::2\.80: Flags \[S\], seq 222,/);
      expect(two[1]).toMatch(/IP6 fd00::1\.40000 > fd00::2\.80: Flags \[P\.\], seq 223:523, ack 2000,.*length 300/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
