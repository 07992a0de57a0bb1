import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SackScoreboard, SackScoreboardError, DUP_THRESH } from '../../src/tcp/sack-scoreboard.js';
import { seqAdd, seqLt } from '../../src/tcp/seq.js';

// Every test sits across the 2^32 wrap: UNA + 0x1000 is 0.
const UNA = 0xfffff000;
const SMSS = 100;
const at = (off: number): number => seqAdd(UNA, off);
const NXT = at(10_000);

/** SACK blocks as a Uint32Array from [leftOffset, rightOffset] pairs relative to UNA. */
function blocks(...pairs: [number, number][]): Uint32Array {
  const b = new Uint32Array(8);
  pairs.forEach(([l, r], i) => {
    b[2 * i] = at(l);
    b[2 * i + 1] = at(r);
  });
  return b;
}

function board(...pairs: [number, number][]): SackScoreboard {
  const sb = new SackScoreboard();
  for (const p of pairs) sb.update(UNA, NXT, blocks(p), 1);
  return sb;
}

describe('SackScoreboard (RFC 6675, RFC 2018)', () => {
  describe('update', () => {
    it('new block is recorded and returns newly sacked bytes (RFC 2018 §3)', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([4000, 4500]), 1)).toBe(500);
      expect(sb.sackedBytes).toBe(500);
      expect(sb.highestSacked).toBe(at(4500));
    });

    it('block across the wrap is recorded', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([0xf00, 0x1100]), 1)).toBe(0x200);
      expect(sb.isSacked(0xffffffff)).toBe(true);
      expect(sb.isSacked(0)).toBe(true);
      expect(sb.isSacked(0xff)).toBe(true);
      expect(sb.isSacked(0x100)).toBe(false);
    });

    it('repeated block returns zero', () => {
      const sb = board([100, 200]);
      expect(sb.update(UNA, NXT, blocks([100, 200]), 1)).toBe(0);
      expect(sb.sackedBytes).toBe(100);
    });

    it('overlapping blocks merge and count only new bytes', () => {
      const sb = board([100, 200], [300, 400]);
      expect(sb.update(UNA, NXT, blocks([150, 350]), 1)).toBe(100);
      expect(sb.rangeCount).toBe(1);
      expect(sb.sackedBytes).toBe(300);
    });

    it('adjacent blocks merge into one range', () => {
      const sb = board([100, 200]);
      sb.update(UNA, NXT, blocks([200, 300], [50, 100]), 2);
      expect(sb.rangeCount).toBe(1);
      expect(sb.sackedBytes).toBe(250);
    });

    it('all blocks of one ack are merged', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([700, 800], [100, 200], [400, 500]), 3)).toBe(300);
      expect(sb.rangeCount).toBe(3);
      expect(sb.highestSacked).toBe(at(800));
    });

    it('count limits the blocks read', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([100, 200], [400, 500]), 1)).toBe(100);
      expect(sb.isSacked(at(450))).toBe(false);
    });

    it('block at or below una is ignored (RFC 2883 D-SACK)', () => {
      const sb = new SackScoreboard();
      const b = new Uint32Array([seqAdd(UNA, -500), UNA]);
      expect(sb.update(UNA, NXT, b, 1)).toBe(0);
      expect(sb.sackedBytes).toBe(0);
    });

    it('block beyond snd nxt is ignored', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([9_900, 10_001]), 1)).toBe(0);
      expect(sb.update(UNA, NXT, blocks([9_900, 10_000]), 1)).toBe(100); // right edge = nxt is fine
    });

    it('empty or inverted block is ignored', () => {
      const sb = new SackScoreboard();
      expect(sb.update(UNA, NXT, blocks([500, 500], [600, 550]), 2)).toBe(0);
      expect(sb.rangeCount).toBe(0);
    });

    it('block straddling una is clipped to una', () => {
      const sb = new SackScoreboard();
      const b = new Uint32Array([seqAdd(UNA, -100), at(200)]);
      expect(sb.update(UNA, NXT, b, 1)).toBe(200);
      expect(sb.isSacked(seqAdd(UNA, -1))).toBe(false);
      expect(sb.isSacked(UNA)).toBe(true);
    });

    it('garbage block far outside the window is ignored', () => {
      const sb = new SackScoreboard();
      const b = new Uint32Array([seqAdd(UNA, 0x80000000), seqAdd(UNA, 0x80000100)]);
      expect(sb.update(UNA, NXT, b, 1)).toBe(0);
      expect(sb.rangeCount).toBe(0);
    });
  });

  describe('advance / clear', () => {
    it('advance drops ranges below the cumulative ack', () => {
      const sb = board([100, 200], [300, 400]);
      sb.advance(at(250));
      expect(sb.rangeCount).toBe(1);
      expect(sb.sackedBytes).toBe(100);
      expect(sb.isSacked(at(150))).toBe(false);
    });

    it('advance into a range trims it', () => {
      const sb = board([0xf00, 0x1100]);
      sb.advance(0x80); // past the wrap, inside the range
      expect(sb.sackedBytes).toBe(0x80);
      expect(sb.isSacked(0x7f)).toBe(false);
      expect(sb.isSacked(0x80)).toBe(true);
    });

    it('highest sacked is una when empty', () => {
      const sb = board([100, 200]);
      sb.advance(at(300));
      expect(sb.highestSacked).toBe(at(300));
      expect(sb.sackedBytes).toBe(0);
    });

    it('clear forgets everything (RFC 6675 §5.1 after RTO)', () => {
      const sb = board([100, 200]);
      sb.clear();
      expect(sb.rangeCount).toBe(0);
      expect(sb.sackedBytes).toBe(0);
      expect(sb.isSacked(at(150))).toBe(false);
    });
  });

  it('clear with una sets the empty highest sacked', () => {
    const sb = new SackScoreboard();
    sb.clear(UNA);
    expect(sb.highestSacked).toBe(UNA);
  });

  describe('isSacked', () => {
    it('left edge is inclusive and right edge exclusive (RFC 2018 §3)', () => {
      const sb = board([100, 200]);
      expect(sb.isSacked(at(99))).toBe(false);
      expect(sb.isSacked(at(100))).toBe(true);
      expect(sb.isSacked(at(199))).toBe(true);
      expect(sb.isSacked(at(200))).toBe(false);
    });
  });

  describe('isLost (RFC 6675 §4 IsLost)', () => {
    it('dupthresh discontiguous ranges above mean lost', () => {
      expect(DUP_THRESH).toBe(3);
      const sb = board([100, 101], [200, 201], [300, 301]);
      expect(sb.isLost(at(0), SMSS)).toBe(true);
    });

    it('fewer than dupthresh small ranges above mean not lost', () => {
      const sb = board([100, 101], [200, 201], [300, 301]);
      expect(sb.isLost(at(150), SMSS)).toBe(false);
    });

    it('more than dupthresh minus 1 smss bytes above mean lost', () => {
      const sb = board([100, 100 + 2 * SMSS + 1]);
      expect(sb.isLost(at(0), SMSS)).toBe(true);
    });

    it('exactly dupthresh minus 1 smss bytes above is not lost', () => {
      const sb = board([100, 100 + 2 * SMSS]);
      expect(sb.isLost(at(0), SMSS)).toBe(false);
    });

    it('only bytes greater than seq count', () => {
      // seq inside the range: only the SACKed bytes after seq count.
      const sb = board([100, 100 + 2 * SMSS + 2]);
      expect(sb.isLost(at(100), SMSS)).toBe(true); // 2*SMSS + 1 bytes above
      expect(sb.isLost(at(101), SMSS)).toBe(false); // 2*SMSS bytes above
    });

    it('nothing sacked means not lost', () => {
      expect(new SackScoreboard().isLost(UNA, SMSS)).toBe(false);
    });
  });

  describe('pipe (RFC 6675 §4 SetPipe)', () => {
    it('without sack pipe is flight size', () => {
      const sb = new SackScoreboard();
      expect(sb.pipe(UNA, at(1000), UNA, SMSS)).toBe(1000);
    });

    it('sacked bytes are not in pipe', () => {
      const sb = board([500, 600]);
      expect(sb.pipe(UNA, at(1000), UNA, SMSS)).toBe(900);
    });

    it('lost bytes are not in pipe (SetPipe (a))', () => {
      // Three ranges above [0, 100): that hole is lost; holes above the lowest range are not.
      const sb = board([100, 200], [300, 400], [500, 600]);
      // un-SACKed: [0,100) lost; [200,300) [400,500) [600,1000) not lost => 100 + 100 + 400
      expect(sb.pipe(UNA, at(1000), UNA, SMSS)).toBe(600);
    });

    it('retransmitted bytes count again (SetPipe (b))', () => {
      const sb = board([100, 200], [300, 400], [500, 600]);
      // [0,100) retransmitted (highRxt exclusive = 100): +100
      expect(sb.pipe(UNA, at(1000), at(100), SMSS)).toBe(700);
    });

    it('retransmitted bytes that are not lost count twice (SetPipe (a)+(b))', () => {
      const sb = board([100, 200], [300, 400], [500, 600]);
      // highRxt 250: [0,100) lost+rxt: 1x; [200,250) not lost + rxt: 2x
      expect(sb.pipe(UNA, at(1000), at(250), SMSS)).toBe(600 + 100 + 50);
    });

    it('pipe advances to the given una', () => {
      const sb = board([100, 200]);
      expect(sb.pipe(at(300), at(1000), at(300), SMSS)).toBe(700);
      expect(sb.sackedBytes).toBe(0);
    });
  });

  describe('nextHole (RFC 6675 §4 NextSeg rules 1 and 3)', () => {
    const out = new Uint32Array(3);

    it('rule 1 returns the lowest lost hole', () => {
      const sb = board([100, 200], [300, 400], [500, 600]);
      expect(sb.nextHole(UNA, UNA, SMSS, out)).toBe(true);
      expect(out[0]).toBe(UNA);
      expect(out[1]).toBe(100);
      expect(out[2]).toBe(1);
    });

    it('rule 1 segment is at most smss', () => {
      const sb = board([1000, 1001], [1100, 1101], [1200, 1201]);
      expect(sb.nextHole(UNA, UNA, SMSS, out)).toBe(true);
      expect(out[0]).toBe(UNA);
      expect(out[1]).toBe(SMSS);
    });

    it('rule 1 segment stops at sacked data', () => {
      const sb = board([30, 200], [300, 400], [500, 600]);
      sb.nextHole(UNA, UNA, SMSS, out);
      expect(out[1]).toBe(30);
    });

    it('rule 1 skips what was already retransmitted (S2 > HighRxt)', () => {
      const sb = board([100, 110], [200, 210], [300, 310], [400, 410]);
      // Holes [0,100), [110,200) and [210,300) are lost (≥ 3 ranges above); [0,100) was resent.
      expect(sb.nextHole(UNA, at(100), SMSS, out)).toBe(true);
      expect(out[0]).toBe(at(110));
      expect(out[1]).toBe(90);
    });

    it('rule 1 skips sacked data between highrxt and the hole', () => {
      const sb = board([100, 110], [200, 210], [300, 310], [400, 410]);
      expect(sb.nextHole(UNA, at(105), SMSS, out)).toBe(true);
      expect(out[0]).toBe(at(110));
    });

    it('rule 3 returns a hole that is not yet lost when rule 1 fails', () => {
      const sb = board([100, 200]);
      expect(sb.nextHole(UNA, UNA, SMSS, out)).toBe(true);
      expect(out[0]).toBe(UNA);
      expect(out[1]).toBe(100);
      expect(out[2]).toBe(3);
    });

    it('rule 3 is skipped when not requested (rule 2 new data comes first)', () => {
      const sb = board([100, 200]);
      expect(sb.nextHole(UNA, UNA, SMSS, out, false)).toBe(false);
    });

    it('no hole below highest sacked means nothing to retransmit (1.b)', () => {
      const sb = board([100, 200]);
      expect(sb.nextHole(UNA, at(200), SMSS, out)).toBe(false);
    });

    it('empty scoreboard has no hole', () => {
      expect(new SackScoreboard().nextHole(UNA, UNA, SMSS, out)).toBe(false);
    });

    it('two element out is accepted', () => {
      const sb = board([100, 200], [300, 400], [500, 600]);
      const out2 = new Uint32Array(2);
      expect(sb.nextHole(UNA, UNA, SMSS, out2)).toBe(true);
      expect(out2[0]).toBe(UNA);
    });
  });

  describe('memory bound', () => {
    it('full scoreboard discards a new highest range', () => {
      const sb = new SackScoreboard(2);
      sb.update(UNA, NXT, blocks([100, 200], [300, 400]), 2);
      expect(sb.update(UNA, NXT, blocks([500, 600]), 1)).toBe(0);
      expect(sb.rangeCount).toBe(2);
      expect(sb.evictions).toBe(1);
      expect(sb.isSacked(at(550))).toBe(false);
      expect(sb.sackedBytes).toBe(200);
    });

    it('full scoreboard evicts its highest range for a lower one', () => {
      const sb = new SackScoreboard(2);
      sb.update(UNA, NXT, blocks([300, 400], [500, 600]), 2);
      expect(sb.update(UNA, NXT, blocks([100, 200]), 1)).toBe(100);
      expect(sb.rangeCount).toBe(2);
      expect(sb.evictions).toBe(1);
      expect(sb.isSacked(at(150))).toBe(true);
      expect(sb.isSacked(at(550))).toBe(false);
      expect(sb.highestSacked).toBe(at(400));
      expect(sb.sackedBytes).toBe(200);
    });

    it('full scoreboard still merges overlapping blocks', () => {
      const sb = new SackScoreboard(2);
      sb.update(UNA, NXT, blocks([100, 200], [300, 400]), 2);
      expect(sb.update(UNA, NXT, blocks([200, 300]), 1)).toBe(100);
      expect(sb.rangeCount).toBe(1);
      expect(sb.evictions).toBe(0);
    });

    it('invalid max ranges is rejected with code', () => {
      expect(() => new SackScoreboard(0)).toThrow(SackScoreboardError);
      try {
        new SackScoreboard(1.5);
        expect.unreachable();
      } catch (err) {
        expect((err as SackScoreboardError).code).toBe('ERR_TCP_SACK_CONFIG');
      }
    });
  });

  describe('against a per-byte model (property)', () => {
    const W = 600;
    const S = 20;

    /** Straightforward per-byte implementation of the same rules, offsets relative to una. */
    class Model {
      una = UNA;
      sacked = new Uint8Array(0x10000); // indexed by (seq - UNA) & 0xffff; windows stay small
      idx(seq: number): number {
        return (seq - UNA) & 0xffff;
      }
      isSacked(seq: number): boolean {
        return this.sacked[this.idx(seq)] === 1;
      }
      update(una: number, nxt: number, b: Uint32Array, count: number): number {
        this.advance(una);
        const win = (nxt - una) >>> 0;
        let added = 0;
        for (let k = 0; k < count; k++) {
          let l = b[2 * k]!;
          const r = b[2 * k + 1]!;
          const ro = (r - una) >>> 0;
          if (ro === 0 || ro > win) continue;
          if (((l - una) >>> 0) >= ro) {
            if (seqLt(l, una)) l = una;
            else continue;
          }
          for (let s = l; s !== r; s = seqAdd(s, 1)) {
            if (!this.isSacked(s)) {
              this.sacked[this.idx(s)] = 1;
              added++;
            }
          }
        }
        return added;
      }
      advance(una: number): void {
        for (let s = this.una; seqLt(s, una); s = seqAdd(s, 1)) this.sacked[this.idx(s)] = 0;
        this.una = seqLt(this.una, una) ? una : this.una;
      }
      highest(nxt: number): number {
        let h = this.una;
        for (let s = this.una; seqLt(s, nxt); s = seqAdd(s, 1)) if (this.isSacked(s)) h = seqAdd(s, 1);
        return h;
      }
      isLost(seq: number, nxt: number): boolean {
        let ranges = 0;
        let bytes = 0;
        let inRun = false;
        for (let s = seqAdd(seq, 1); seqLt(s, nxt); s = seqAdd(s, 1)) {
          const k = this.isSacked(s);
          if (k) {
            bytes++;
            if (!inRun) ranges++;
          }
          inRun = k;
        }
        return ranges >= 3 || bytes > 2 * S;
      }
      pipe(nxt: number, highRxt: number): number {
        let p = 0;
        for (let s = this.una; seqLt(s, nxt); s = seqAdd(s, 1)) {
          if (this.isSacked(s)) continue;
          if (!this.isLost(s, nxt)) p++;
          if (seqLt(s, highRxt)) p++;
        }
        return p;
      }
      nextHole(nxt: number, highRxt: number, rule3: boolean): [number, number, number] | null {
        const high = this.highest(nxt);
        const from = seqLt(this.una, highRxt) ? highRxt : this.una;
        for (const rule of rule3 ? [1, 3] : [1]) {
          for (let s = from; seqLt(s, high); s = seqAdd(s, 1)) {
            if (this.isSacked(s)) continue;
            if (rule === 1 && !this.isLost(s, nxt)) continue;
            let len = 0;
            while (len < S && !this.isSacked(seqAdd(s, len)) && seqLt(seqAdd(s, len), high)) len++;
            return [s, len, rule];
          }
        }
        return null;
      }
    }

    const op = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          k: fc.constant('ack' as const),
          blocks: fc.array(fc.tuple(fc.integer({ min: -50, max: W + 20 }), fc.integer({ min: -20, max: 80 })), {
            minLength: 1,
            maxLength: 4,
          }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ k: fc.constant('advance' as const), by: fc.integer({ min: 0, max: 100 }) }) },
    );

    it('matches the model for random ack sequences', () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 25, size: 'max' }), fc.integer({ min: 0, max: W }), (ops, rxtOff) => {
          const sb = new SackScoreboard(64);
          sb.clear(UNA);
          const m = new Model();
          let una = UNA;
          const nxt = at(W);
          const b = new Uint32Array(8);
          for (const o of ops) {
            if (o.k === 'advance') {
              una = seqLt(seqAdd(una, o.by), nxt) ? seqAdd(una, o.by) : nxt;
              sb.advance(una);
              m.advance(una);
            } else {
              o.blocks.forEach(([l, len], i) => {
                b[2 * i] = seqAdd(una, l);
                b[2 * i + 1] = seqAdd(una, l + len);
              });
              expect(sb.update(una, nxt, b, o.blocks.length)).toBe(m.update(una, nxt, b, o.blocks.length));
            }
          }
          let count = 0;
          for (let s = una; seqLt(s, nxt); s = seqAdd(s, 1)) {
            expect(sb.isSacked(s)).toBe(m.isSacked(s));
            if (m.isSacked(s)) count++;
          }
          expect(sb.sackedBytes).toBe(count);
          expect(sb.highestSacked).toBe(m.highest(nxt));
          for (let s = una; seqLt(s, nxt); s = seqAdd(s, 7)) expect(sb.isLost(s, S)).toBe(m.isLost(s, nxt));
          const highRxt = seqAdd(UNA, rxtOff);
          expect(sb.pipe(una, nxt, highRxt, S)).toBe(m.pipe(nxt, highRxt));
          const out = new Uint32Array(3);
          for (const rule3 of [false, true]) {
            const expected = m.nextHole(nxt, highRxt, rule3);
            const got = sb.nextHole(una, highRxt, S, out, rule3);
            expect(got).toBe(expected !== null);
            if (expected) expect([out[0], out[1], out[2]]).toEqual(expected);
          }
        }),
        { numRuns: 300 },
      );
    });

    it('bounded scoreboard never reports unsacked bytes as sacked', () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 25, size: 'max' }), (ops) => {
          const sb = new SackScoreboard(3);
          sb.clear(UNA);
          const m = new Model();
          let una = UNA;
          const nxt = at(W);
          const b = new Uint32Array(8);
          for (const o of ops) {
            if (o.k === 'advance') {
              una = seqLt(seqAdd(una, o.by), nxt) ? seqAdd(una, o.by) : nxt;
              sb.advance(una);
              m.advance(una);
            } else {
              o.blocks.forEach(([l, len], i) => {
                b[2 * i] = seqAdd(una, l);
                b[2 * i + 1] = seqAdd(una, l + len);
              });
              sb.update(una, nxt, b, o.blocks.length);
              m.update(una, nxt, b, o.blocks.length);
            }
            expect(sb.rangeCount).toBeLessThanOrEqual(3);
          }
          let count = 0;
          for (let s = una; seqLt(s, nxt); s = seqAdd(s, 1)) {
            if (sb.isSacked(s)) {
              count++;
              expect(m.isSacked(s)).toBe(true);
            }
          }
          expect(sb.sackedBytes).toBe(count);
        }),
        { numRuns: 300 },
      );
    });
  });
});
