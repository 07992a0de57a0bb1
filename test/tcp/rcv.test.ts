import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_OOO_RANGES, RcvFlag, Receiver } from '../../src/tcp/rcv.js';
import { seqAdd } from '../../src/tcp/seq.js';

/** IRS just below the wrap: RCV.NXT = IRS + 1 crosses 2^32 within the first 4 KiB. */
const IRS = 0xfffff800;
const n = (k: number): number => seqAdd(IRS, 1 + k);

function receiver(bufBytes = 4000, shift = 0, mss = 1000): Receiver {
  const r = new Receiver(bufBytes, mss);
  r.init(IRS, shift);
  r.commitSynWindow(r.synWindow());
  return r;
}

const text = (k: number, s: string): [number, Buffer] => [n(k), Buffer.from(s)];

describe('Receiver: acceptability (RFC 9293 §3.10.7.4)', () => {
  it('RFC 9293 §3.10.7.4: the four cases of the acceptability table', () => {
    const r = receiver();
    expect(r.window).toBe(4000);
    expect(r.acceptable(n(0), 0)).toBe(true);
    expect(r.acceptable(n(3999), 0)).toBe(true);
    expect(r.acceptable(n(4000), 0)).toBe(false);
    expect(r.acceptable(n(-1), 0)).toBe(false);
    expect(r.acceptable(n(-5), 10)).toBe(true);
    expect(r.acceptable(n(3999), 10)).toBe(true);
    expect(r.acceptable(n(4000), 10)).toBe(false);
    expect(r.acceptable(n(-10), 10)).toBe(false);
    r.ingest(n(0), Buffer.alloc(4000), false);
    r.commitWindow(r.selectWindow());
    expect(r.window).toBe(0);
    expect(r.acceptable(n(4000), 0)).toBe(true);
    expect(r.acceptable(n(4001), 0)).toBe(false);
    expect(r.acceptable(n(4000), 1)).toBe(false);
  });
});

describe('Receiver: ingest', () => {
  it('in-order text is delivered as an owned copy and RCV.NXT advances across the wrap', () => {
    const r = receiver();
    const p = Buffer.from('hello');
    expect(r.ingest(n(0), p, false)).toBe(RcvFlag.DATA);
    expect(r.delivered!.toString()).toBe('hello');
    expect(r.delivered!.buffer === p.buffer && r.delivered!.byteOffset === p.byteOffset).toBe(false);
    expect(r.nxt).toBe(n(5));
    expect(r.unconsumed).toBe(5);
  });

  it('deliverViews: in-order text is the segment buffer itself, or a view of its trimmed part, never a copy', () => {
    const r = receiver();
    r.deliverViews = true;
    const p = Buffer.from('hello');
    expect(r.ingest(n(0), p, false)).toBe(RcvFlag.DATA);
    expect(r.delivered).toBe(p);
    const q = Buffer.from('loworld');
    expect(r.ingest(n(3), q, false)).toBe(RcvFlag.DATA);
    const view = r.delivered!;
    expect(view.toString()).toBe('world');
    q.write('W', 2);
    expect(view.toString()).toBe('World');
    expect(r.unconsumed).toBe(10);
  });

  it('deliverViews: text joined up from the reassembly ring is an owned copy', () => {
    const r = receiver();
    r.deliverViews = true;
    r.ingest(...text(3, 'def'), false);
    const p = Buffer.from('abc');
    expect(r.ingest(n(0), p, false)).toBe(RcvFlag.DATA | RcvFlag.FILLED);
    const got = r.delivered!;
    p.write('xyz');
    expect(got.toString()).toBe('abcdef');
  });

  it('RFC 9293 §3.10.7.4: text before RCV.NXT is trimmed; all-old text is a duplicate', () => {
    const r = receiver();
    r.ingest(...text(0, 'abc'), false);
    expect(r.ingest(...text(1, 'bcde'), false)).toBe(RcvFlag.DATA);
    expect(r.delivered!.toString()).toBe('de');
    expect(r.ingest(...text(0, 'ab'), false)).toBe(RcvFlag.DUPLICATE);
    expect(r.delivered).toBeNull();
  });

  it('RFC 9293 §3.10.7.4: text beyond the window is trimmed and a FIN after it is dropped', () => {
    const r = receiver();
    expect(r.ingest(n(3998), Buffer.from('wxyz'), true)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.oooBytes).toBe(2);
    expect(r.finSeen).toBe(false);
  });

  it('out-of-order text is held and joined when the hole fills (FILLED)', () => {
    const r = receiver();
    expect(r.ingest(...text(3, 'def'), false)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.ingest(...text(0, 'abc'), false)).toBe(RcvFlag.DATA | RcvFlag.FILLED);
    expect(r.delivered!.toString()).toBe('abcdef');
    expect(r.oooBytes).toBe(0);
    expect(r.ringAllocated).toBe(false);
  });

  it('a FIN seen out of order is processed when the data before it arrives', () => {
    const r = receiver();
    expect(r.ingest(...text(2, 'cd'), true)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.ingest(...text(0, 'ab'), false)).toBe(RcvFlag.DATA | RcvFlag.FILLED | RcvFlag.FIN);
    expect(r.delivered!.toString()).toBe('abcd');
    expect(r.nxt).toBe(n(5));
  });

  it('nothing beyond a known FIN is accepted', () => {
    const r = receiver();
    r.ingest(...text(2, 'cd'), true);
    r.ingest(...text(4, 'zz'), false);
    expect(r.oooBytes).toBe(2);
    r.ingest(...text(0, 'ab'), false);
    expect(r.delivered!.toString()).toBe('abcd');
  });

  it(`at most MAX_OOO_RANGES (${MAX_OOO_RANGES}) separate ranges are held; more is DROPPED`, () => {
    const r = receiver(65535, 0, 1460);
    for (let i = 0; i < MAX_OOO_RANGES; i++) expect(r.ingest(n(10 + 10 * i), Buffer.from('x'), false)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.ingest(n(10 + 10 * MAX_OOO_RANGES), Buffer.from('x'), false)).toBe(RcvFlag.DROPPED);
    // Joining an existing range is still fine.
    expect(r.ingest(n(11), Buffer.from('y'), false)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.oooBytes).toBe(MAX_OOO_RANGES + 1);
  });

  it('reassembly matches the sent stream for any arrival order (model check, across the wrap)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(5999), fc.integer({ min: 1, max: 1500 }), fc.boolean()), { minLength: 1, maxLength: 60, size: 'max' }),
        (arrivals) => {
          const source = Buffer.alloc(6000);
          for (let i = 0; i < source.length; i++) source[i] = (i * 7 + 3) & 0xff;
          const r = receiver(3000, 0, 1000);
          const got: Buffer[] = [];
          let delivered = 0;
          const take = (start: number, len: number): void => {
            const end = Math.min(start + len, source.length);
            if (end <= start) return;
            const f = r.ingest(n(start), source.subarray(start, end), false);
            if (f & RcvFlag.DATA) {
              got.push(r.delivered!);
              delivered += r.delivered!.length;
            }
            expect(r.buffered).toBeLessThanOrEqual(3000);
          };
          for (const [start, len, consume] of arrivals) {
            take(start, len);
            if (consume) {
              r.consume(r.unconsumed);
              r.commitWindow(r.selectWindow());
            }
          }
          // Everything delivered is exactly the stream's prefix.
          expect(Buffer.concat(got).equals(source.subarray(0, delivered))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a hole held open while data keeps flowing reuses the ring consistently (rebase)', () => {
    const r = receiver(3000, 0, 1000);
    const src = (k: number): number => (k * 13 + 5) & 0xff;
    const chunk = (from: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = src(from + i);
      return b;
    };
    let out = 0;
    let pos = 0;
    for (let round = 0; round < 50; round++) {
      // A segment lands out of order just above the hole, then the hole fills.
      r.ingest(n(pos + 500), chunk(pos + 500, 700), false);
      const f = r.ingest(n(pos), chunk(pos, 500), false);
      expect(f & RcvFlag.DATA).toBeTruthy();
      const d = r.delivered!;
      for (let i = 0; i < d.length; i++) expect(d[i]).toBe(src(out + i));
      out += d.length;
      pos += 1200;
      r.consume(r.unconsumed);
      r.commitWindow(r.selectWindow());
    }
    expect(out).toBe(60_000);
  });
});

describe('Receiver: the window we advertise (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4)', () => {
  it('RFC 9293 §3.8.6.2.2: the window is the free buffer measured from RCV.NXT', () => {
    const r = receiver();
    r.ingest(n(0), Buffer.alloc(1500), false);
    expect(r.selectWindow()).toBe(2500);
  });

  it('RFC 9293 §3.8.6.2.2 (SWS): the right edge moves only by ≥ min(buffer/2, MSS)', () => {
    const r = receiver();
    r.ingest(n(0), Buffer.alloc(4000), false);
    r.commitWindow(r.selectWindow());
    r.consume(999);
    expect(r.selectWindow()).toBe(0);
    expect(r.windowUpdateDue()).toBe(false);
    r.consume(1);
    expect(r.windowUpdateDue()).toBe(true);
    expect(r.selectWindow()).toBe(1000);
  });

  it('RFC 7323 §2.4: with a scale the field is rounded up rather than retract the edge (≤ one unit over)', () => {
    const r = receiver(200_000, 2, 1000);
    r.commitWindow(r.selectWindow());
    const edge0 = seqAdd(r.nxt, r.advertisedWindow);
    r.ingest(n(0), Buffer.alloc(333), false);
    const field = r.selectWindow();
    r.commitWindow(field);
    const edge1 = seqAdd(r.nxt, field * 4);
    expect((edge1 - edge0) | 0).toBeGreaterThanOrEqual(0);
    expect((edge1 - edge0) | 0).toBeLessThan(4);
  });

  it('RFC 7323 §2.3: the field never exceeds 65535', () => {
    const r = receiver(1 << 30, 14, 1460);
    expect(r.selectWindow()).toBe(65535);
  });

  it('RFC 9293 §3.8.6.2.2: an advertised right edge is kept even if free space shrank, and data accepted up to it', () => {
    const r = receiver();
    r.commitWindow(r.selectWindow());
    expect(r.window).toBe(4000);
    r.unconsumed = 3999; // as if the buffer filled from elsewhere
    expect(r.selectWindow()).toBe(4000);
    expect(r.acceptable(n(3999), 1)).toBe(true);
  });
});

describe('Receiver: SACK blocks (RFC 2018 §4)', () => {
  it('RFC 2018 §4: most recent first, then the others lowest first, at most `max`', () => {
    const r = receiver(65535, 0, 1460);
    r.ingest(...text(100, 'a'), false);
    r.ingest(...text(300, 'b'), false);
    r.ingest(...text(500, 'c'), false);
    r.ingest(...text(700, 'd'), false);
    r.ingest(...text(301, 'e'), false);
    const out = new Uint32Array(8);
    expect(r.sackBlocks(out, 4)).toBe(4);
    expect(Array.from(out)).toEqual([n(300), n(302), n(700), n(701), n(500), n(501), n(100), n(101)]);
    expect(r.sackBlocks(out, 2)).toBe(2);
    expect(Array.from(out.subarray(0, 4))).toEqual([n(300), n(302), n(700), n(701)]);
  });

  it('no blocks once nothing is held out of order', () => {
    const r = receiver();
    r.ingest(...text(5, 'x'), false);
    r.ingest(...text(0, 'abcde'), false);
    expect(r.sackBlocks(new Uint32Array(8), 4)).toBe(0);
  });
});
