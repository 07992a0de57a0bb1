import { describe, it, expect } from 'vitest';
import {
  TcpView,
  emitTcpHeader,
  emitTcpOptions,
  parseTcpOptions,
  sackBlocksThatFit,
  tcpOptionsLength,
  TCP_CHECKSUM_OFFSET,
} from '../../src/wire/tcp.js';
import { pseudoSumV4At } from '../../src/wire/checksum.js';
import { TcpFlag, TcpOptions } from '../../src/wire/segment.js';
import { DATA_V4, SACK_V4, SYN_V4, SYNACK_V6 } from './golden.js';
import { hex } from './helpers.js';

function opts(init: Partial<Omit<TcpOptions, 'sackBlocks' | 'clear'>> & { sack?: number[] } = {}): TcpOptions {
  const o = new TcpOptions();
  const { sack, ...rest } = init;
  Object.assign(o, rest);
  if (sack !== undefined) {
    o.sackBlocks.set(sack);
    o.sackCount = sack.length / 2;
  }
  return o;
}

/** Parse `bytes` as a whole options area. */
function parse(bytes: string, into = new TcpOptions()): [string, TcpOptions] {
  const b = hex(bytes);
  return [parseTcpOptions(b, 0, b.length, into), into];
}

/** Emit into a fresh buffer and return the bytes written. */
function emit(o: TcpOptions): Buffer {
  const b = Buffer.alloc(60, 0xee);
  const n = emitTcpOptions(b, 0, o);
  expect(n).toBe(tcpOptionsLength(o));
  return b.subarray(0, n);
}

describe('TcpView: deconstruct', () => {
  it('reads every field of golden syn', () => {
    const p = hex(SYN_V4);
    const v = new TcpView();
    expect(v.reset(p, 20, 40)).toBe('ok');
    expect(v.srcPort).toBe(54321);
    expect(v.dstPort).toBe(443);
    expect(v.seq).toBe(0xf0e1d2c3);
    expect(v.ack).toBe(0);
    expect(v.dataOffset).toBe(10);
    expect(v.headerLength).toBe(40);
    expect(v.flags).toBe(TcpFlag.SYN);
    expect(v.window).toBe(64240);
    expect(v.checksum).toBe(0x51b1);
    expect(v.urgent).toBe(0);
    expect(v.payloadOffset).toBe(60);
    expect(v.payloadLength).toBe(0);
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 6, 40))).toBe(true);
  });

  it('parses linux syn options', () => {
    const p = hex(SYN_V4);
    const v = new TcpView();
    v.reset(p, 20, 40);
    const o = new TcpOptions();
    expect(v.parseOptions(o)).toBe('ok');
    expect(o).toMatchObject({ mss: 1460, wscale: 7, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687, tsEcr: 0, sackCount: 0 });
  });

  it('reads payload bounds and seq above 2^31', () => {
    const p = hex(DATA_V4);
    const v = new TcpView();
    expect(v.reset(p, 20, 37)).toBe('ok');
    expect(v.seq).toBe(0xf0e1d2c4);
    expect(v.flags).toBe(TcpFlag.ACK | TcpFlag.PSH);
    expect(v.headerLength).toBe(32);
    expect(v.payloadOffset).toBe(52);
    expect(v.payloadLength).toBe(5);
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 6, 37))).toBe(true);
  });

  it('verifyChecksum: fails on a flipped payload bit', () => {
    const p = hex(DATA_V4);
    p[56] = p[56]! ^ 0x20;
    const v = new TcpView();
    v.reset(p, 20, 37);
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 6, 37))).toBe(false);
  });

  it('setters write in place', () => {
    const p = Buffer.alloc(20);
    p[12] = 0x50;
    const v = new TcpView();
    v.reset(p, 0, 20);
    v.srcPort = 1;
    v.dstPort = 0xffff;
    v.seq = 0xfffffffe;
    v.ack = 0x80000000;
    v.flags = TcpFlag.FIN | TcpFlag.ACK;
    v.window = 0x1234;
    v.checksum = 0xbeef;
    v.urgent = 7;
    expect(p).toEqual(hex('00 01 ff ff ff ff ff fe 80 00 00 00 50 11 12 34 be ef 00 07'));
  });
});

describe('TcpView: rejects impossible lengths', () => {
  const v = new TcpView();

  it('shorter than 20 bytes is truncated', () => {
    expect(v.reset(hex(SYN_V4), 20, 19)).toBe('truncated');
  });

  it('RFC 9293 data offset below 5 is bad data offset', () => {
    const p = hex(SYN_V4);
    for (const d of [0, 4]) {
      p[32] = d << 4;
      expect(v.reset(p, 20, 40)).toBe('bad_data_offset');
    }
  });

  it('data offset beyond the segment is bad data offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0xb0; // 44 bytes of header in a 40-byte segment
    expect(v.reset(p, 20, 40)).toBe('bad_data_offset');
  });
});

describe('TCP options: golden bytes both ways', () => {
  const cases: Array<[string, string, Partial<Omit<TcpOptions, 'sackBlocks' | 'clear'>> & { sack?: number[] }]> = [
    ['mss', '02 04 05 b4', { mss: 1460 }],
    ['window_scale', '01 03 03 0e', { wscale: 14 }],
    ['sack_permitted_alone', '01 01 04 02', { sackPermitted: true }],
    ['timestamps_alone', '01 01 08 0a 01 02 03 04 fe dc ba 98', { tsPresent: true, tsVal: 0x01020304, tsEcr: 0xfedcba98 }],
    ['sack_permitted_with_timestamps', '04 02 08 0a 00 00 00 01 00 00 00 02', { sackPermitted: true, tsPresent: true, tsVal: 1, tsEcr: 2 }],
    ['sack_one_block', '01 01 05 0a ff ff ff f0 00 00 00 10', { sack: [0xfffffff0, 0x10] }],
    [
      'linux_syn',
      '02 04 05 b4 04 02 08 0a 00 12 d6 87 00 00 00 00 01 03 03 07',
      { mss: 1460, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687, tsEcr: 0, wscale: 7 },
    ],
    ['linux_syn_without_timestamps', '02 04 05 b4 01 01 04 02 01 03 03 07', { mss: 1460, sackPermitted: true, wscale: 7 }],
    [
      'data_segment_timestamps_then_sack',
      '01 01 08 0a 00 00 00 64 00 00 00 c8 01 01 05 12 00 00 10 00 00 00 20 00 00 00 30 00 00 00 40 00',
      { tsPresent: true, tsVal: 100, tsEcr: 200, sack: [0x1000, 0x2000, 0x3000, 0x4000] },
    ],
  ];

  for (const [name, bytes, fields] of cases) {
    it(`${name}_parses_to_fields`, () => {
      const [verdict, o] = parse(bytes);
      expect(verdict).toBe('ok');
      const want = opts(fields);
      expect({ ...o, sackBlocks: Array.from(o.sackBlocks.subarray(0, 2 * o.sackCount)) }).toEqual({
        ...want,
        sackBlocks: Array.from(want.sackBlocks.subarray(0, 2 * want.sackCount)),
      });
    });

    it(`${name}_emits_the_same_bytes`, () => {
      expect(emit(opts(fields))).toEqual(hex(bytes));
    });
  }

  it('no options emit nothing', () => {
    expect(emit(new TcpOptions()).length).toBe(0);
  });

  it('sack blocks of golden ack parse', () => {
    const p = hex(SACK_V4);
    const v = new TcpView();
    v.reset(p, 20, 52);
    const o = new TcpOptions();
    expect(v.parseOptions(o)).toBe('ok');
    expect(o.sackCount).toBe(2);
    expect(Array.from(o.sackBlocks.subarray(0, 4))).toEqual([0x1000, 0x2000, 0x3000, 0x4000]);
  });

  it('synack v6 options parse', () => {
    const p = hex(SYNACK_V6);
    const [verdict, o] = parse(p.subarray(60, 80).toString('hex'));
    expect(verdict).toBe('ok');
    expect(o).toMatchObject({ mss: 1440, wscale: 7, sackPermitted: true, tsVal: 0x7f000001, tsEcr: 0x0012d687 });
  });
});

describe('TCP options: 40-byte limit', () => {
  it('three sack blocks fit with timestamps exactly 40 bytes', () => {
    const o = opts({ tsPresent: true, sack: [1, 2, 3, 4, 5, 6] });
    expect(sackBlocksThatFit(o)).toBe(3);
    const b = emit(o);
    expect(b.length).toBe(40);
    const [, back] = parse(b.toString('hex'));
    expect(back.sackCount).toBe(3);
  });

  it('fourth sack block is dropped when timestamps take 12 bytes', () => {
    const o = opts({ tsPresent: true, tsVal: 9, sack: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(sackBlocksThatFit(o)).toBe(3);
    const b = emit(o);
    expect(b.length).toBe(40);
    const [, back] = parse(b.toString('hex'));
    expect(back.tsVal).toBe(9);
    expect(Array.from(back.sackBlocks.subarray(0, 2 * back.sackCount))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('four sack blocks fit without timestamps', () => {
    const o = opts({ sack: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(emit(o).length).toBe(36);
  });

  it('sack blocks that do not fit at all are dropped', () => {
    // MSS 4 + SACK-perm/TS 12 + WS 4 = 20, leaving room for 2 blocks (4 + 16).
    const o = opts({ mss: 1, sackPermitted: true, tsPresent: true, wscale: 1, sack: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(sackBlocksThatFit(o)).toBe(2);
    expect(emit(o).length).toBe(40);
  });

  it('emit never exceeds 40 bytes for any combination', () => {
    for (let mask = 0; mask < 32; mask++) {
      for (let n = 0; n <= 4; n++) {
        const o = opts({
          mss: mask & 1 ? 1460 : -1,
          wscale: mask & 2 ? 7 : -1,
          sackPermitted: (mask & 4) !== 0,
          tsPresent: (mask & 8) !== 0,
          sack: [1, 2, 3, 4, 5, 6, 7, 8].slice(0, 2 * n),
        });
        const b = emit(o);
        expect(b.length).toBeLessThanOrEqual(40);
        expect(b.length % 4).toBe(0);
      }
    }
  });
});

describe('TCP options: parse rules (RFC 9293 §3.2)', () => {
  it('eol ends the list and later bytes are ignored', () => {
    const [v, o] = parse('02 04 05 b4 00 03 00 00');
    expect(v).toBe('ok');
    expect(o.mss).toBe(1460);
    expect(o.wscale).toBe(-1);
  });

  it('nop padding is skipped', () => {
    const [v, o] = parse('01 01 01 02 04 02 00 01');
    expect(v).toBe('ok');
    expect(o.mss).toBe(0x200);
  });

  it('unknown option is skipped by its length', () => {
    const [v, o] = parse('1e 06 aa bb cc dd 03 03 05 01');
    expect(v).toBe('ok');
    expect(o.wscale).toBe(5);
  });

  it('known option with wrong length is ignored', () => {
    const [v, o] = parse('02 06 05 b4 00 00 08 08 00 00 00 01 00 00 01 01');
    expect(v).toBe('ok');
    expect(o.mss).toBe(-1);
    expect(o.tsPresent).toBe(false);
  });

  it('sack with length not 2 plus 8n is ignored', () => {
    const [v, o] = parse('05 06 00 00 00 01 01 01');
    expect(v).toBe('ok');
    expect(o.sackCount).toBe(0);
  });

  it('later duplicate overwrites earlier', () => {
    const [, o] = parse('02 04 00 10 02 04 00 20');
    expect(o.mss).toBe(0x20);
  });

  it('parse clears options from the previous segment', () => {
    const o = opts({ mss: 5, wscale: 3, sackPermitted: true, tsPresent: true, sack: [1, 2] });
    const [v] = parse('01 01 01 01', o);
    expect(v).toBe('ok');
    expect(o).toMatchObject({ mss: -1, wscale: -1, sackPermitted: false, tsPresent: false, sackCount: 0 });
  });

  it('window scale above 14 is reported as received', () => {
    const [, o] = parse('01 03 03 0f');
    expect(o.wscale).toBe(15);
  });

  it('RFC 9293 must7 option length 0 is bad option length', () => {
    expect(parse('02 00 05 b4')[0]).toBe('bad_option_length');
  });

  it('option length 1 is bad option length', () => {
    expect(parse('01 1e 01 00')[0]).toBe('bad_option_length');
  });

  it('option running past the header is option overrun', () => {
    expect(parse('01 01 08 0a 00 00 00 01 00 00 00')[0]).toBe('option_overrun');
  });

  it('option without room for its length octet is option overrun', () => {
    expect(parse('01 01 01 02')[0]).toBe('option_overrun');
  });
});

describe('emitTcpHeader: construct', () => {
  it('writes the golden syn header with zero checksum', () => {
    const out = Buffer.alloc(40, 0xee);
    const o = opts({ mss: 1460, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687, tsEcr: 0, wscale: 7 });
    expect(emitTcpHeader(out, 0, 54321, 443, 0xf0e1d2c3, 0, TcpFlag.SYN, 64240, 0, o)).toBe(40);
    const want = hex(SYN_V4).subarray(20, 60);
    want.writeUInt16BE(0, TCP_CHECKSUM_OFFSET);
    expect(out).toEqual(want);
  });

  it('writes a 20 byte header without options', () => {
    const out = Buffer.alloc(22, 0xee);
    expect(emitTcpHeader(out, 2, 443, 54321, 0, 0xf0e1d2c4, TcpFlag.RST | TcpFlag.ACK, 0, 0, null)).toBe(20);
    expect(out.subarray(2)).toEqual(hex('01 bb d4 31 00 00 00 00 f0 e1 d2 c4 50 14 00 00 00 00 00 00'));
  });
});
