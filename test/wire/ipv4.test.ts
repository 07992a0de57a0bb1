import { describe, it, expect } from 'vitest';
import { Ipv4View, emitIpv4 } from '../../src/wire/ipv4.js';
import { SYN_V4, UDP_V4, ECHO_REQ_V4 } from './golden.js';
import { hex, placed, refChecksum } from './helpers.js';

function header(mutate?: (h: Buffer) => void): Buffer {
  const h = hex(SYN_V4);
  mutate?.(h);
  return h;
}

describe('Ipv4View: deconstruct', () => {
  it('reads every field of golden syn', () => {
    const v = new Ipv4View();
    const p = hex(SYN_V4);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.version).toBe(4);
    expect(v.headerLength).toBe(20);
    expect(v.tos).toBe(0);
    expect(v.ecn).toBe(0);
    expect(v.totalLength).toBe(60);
    expect(v.identification).toBe(0x1c46);
    expect(v.dontFragment).toBe(true);
    expect(v.moreFragments).toBe(false);
    expect(v.fragmentOffset).toBe(0);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(6);
    expect(v.checksum).toBe(0x9344);
    expect(v.src).toBe(0xc6120001);
    expect(v.dst).toBe(0xc613ff0a);
    expect(v.payloadOffset).toBe(20);
    expect(v.payloadLength).toBe(40);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('reads at a nonzero offset', () => {
    const p = placed(hex(UDP_V4), 7, 5);
    const v = new Ipv4View();
    expect(v.reset(p, 7, p.length - 7)).toBe('ok');
    expect(v.protocol).toBe(17);
    expect(v.dst).toBe(0xc6120035);
    expect(v.payloadOffset).toBe(27);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('ignores bytes after total length', () => {
    const p = placed(hex(SYN_V4), 0, 12);
    const v = new Ipv4View();
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.totalLength).toBe(60);
    expect(v.payloadLength).toBe(40);
  });

  it('skips options when ihl above 5', () => {
    // IHL 6: a 4-byte options area (NOP NOP NOP EOL) before the payload (RFC 791 §3.1).
    const base = hex(ECHO_REQ_V4);
    const p = Buffer.concat([base.subarray(0, 20), hex('01 01 01 00'), base.subarray(20)]);
    p[0] = 0x46;
    p.writeUInt16BE(p.length, 2);
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(refChecksum(p, 0, 24), 10);
    const v = new Ipv4View();
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.headerLength).toBe(24);
    expect(v.payloadOffset).toBe(24);
    expect(v.payloadLength).toBe(16);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('reads ecn from low bits of tos', () => {
    const v = new Ipv4View();
    const p = header((h) => (h[1] = 0xb9)); // DSCP 46 (EF), ECN 0b01 = ECT(1)
    v.reset(p, 0, p.length);
    expect(v.tos).toBe(0xb9);
    expect(v.ecn).toBe(1);
  });
});

describe('Ipv4View: rejects impossible lengths', () => {
  const v = new Ipv4View();

  it('shorter than 20 bytes is truncated', () => {
    const p = hex(SYN_V4);
    expect(v.reset(p, 0, 19)).toBe('truncated');
    expect(v.reset(p, 0, 0)).toBe('truncated');
  });

  it('version other than 4 is bad version', () => {
    const p = header((h) => (h[0] = 0x65));
    expect(v.reset(p, 0, p.length)).toBe('bad_version');
  });

  it('RFC 791 ihl below 5 is bad ihl', () => {
    for (const ihl of [0, 1, 4]) {
      const p = header((h) => (h[0] = 0x40 | ihl));
      expect(v.reset(p, 0, p.length)).toBe('bad_ihl');
    }
  });

  it('ihl beyond the buffer is truncated', () => {
    const p = header((h) => (h[0] = 0x4f)); // 60-byte header
    expect(v.reset(p, 0, 40)).toBe('truncated');
  });

  it('total length beyond the buffer is bad total length', () => {
    const p = header((h) => h.writeUInt16BE(61, 2));
    expect(v.reset(p, 0, p.length)).toBe('bad_total_length');
  });

  it('total length below the header is bad total length', () => {
    const p = header((h) => h.writeUInt16BE(19, 2));
    expect(v.reset(p, 0, p.length)).toBe('bad_total_length');
    const q = header((h) => {
      h[0] = 0x46;
      h.writeUInt16BE(22, 2);
    });
    expect(v.reset(q, 0, q.length)).toBe('bad_total_length');
  });
});

describe('Ipv4View: fragments (we do not reassemble)', () => {
  const v = new Ipv4View();

  it('more fragments set is fragment', () => {
    const p = header((h) => h.writeUInt16BE(0x2000, 6));
    expect(v.reset(p, 0, p.length)).toBe('fragment');
    expect(v.moreFragments).toBe(true);
    expect(v.fragmentOffset).toBe(0);
  });

  it('nonzero offset is fragment and offset counts 8 octet units', () => {
    const p = header((h) => h.writeUInt16BE(0x00b9, 6));
    expect(v.reset(p, 0, p.length)).toBe('fragment');
    expect(v.moreFragments).toBe(false);
    expect(v.fragmentOffset).toBe(0xb9 * 8);
    // The header stays readable.
    expect(v.protocol).toBe(6);
  });

  it('df alone is not a fragment', () => {
    const p = header((h) => h.writeUInt16BE(0x4000, 6));
    expect(v.reset(p, 0, p.length)).toBe('ok');
  });
});

describe('Ipv4View: checksum and in-place writes', () => {
  it('verifyChecksum: fails on a flipped bit', () => {
    const v = new Ipv4View();
    const p = header((h) => (h[8] = h[8]! ^ 0x01));
    v.reset(p, 0, p.length);
    expect(v.verifyChecksum()).toBe(false);
  });

  it('fillChecksum: after setters restores validity', () => {
    const v = new Ipv4View();
    const p = hex(SYN_V4);
    v.reset(p, 0, p.length);
    v.ttl = 1;
    v.src = 0x0a000001;
    v.dst = 0x0a000002;
    expect(v.verifyChecksum()).toBe(false);
    v.fillChecksum();
    expect(v.verifyChecksum()).toBe(true);
    expect(p.subarray(8, 9)).toEqual(hex('01'));
    expect(p.subarray(12, 20)).toEqual(hex('0a 00 00 01 0a 00 00 02'));
    expect(v.checksum).toBe(refChecksum(Buffer.from(p.subarray(0, 20)).fill(0, 10, 12)));
  });
});

describe('emitIpv4: construct', () => {
  it('writes the golden syn header', () => {
    const out = Buffer.alloc(20, 0xaa);
    expect(emitIpv4(out, 0, 0xc6120001, 0xc613ff0a, 6, 40, 0x1c46)).toBe(20);
    expect(out).toEqual(hex(SYN_V4).subarray(0, 20));
  });

  it('writes without df at an offset', () => {
    const out = Buffer.alloc(25, 0xaa);
    expect(emitIpv4(out, 5, 0xc6120001, 0xc613ff0a, 1, 16, 0x2000, false)).toBe(20);
    expect(out.subarray(5)).toEqual(hex(ECHO_REQ_V4).subarray(0, 20));
    expect(out.subarray(0, 5)).toEqual(Buffer.alloc(5, 0xaa));
  });

  it('writes ttl and tos', () => {
    const out = Buffer.alloc(20);
    emitIpv4(out, 0, 1, 2, 6, 0, 0, true, 255, 0x02);
    const v = new Ipv4View();
    expect(v.reset(out, 0, 20)).toBe('ok');
    expect(v.ttl).toBe(255);
    expect(v.ecn).toBe(2);
    expect(v.verifyChecksum()).toBe(true);
  });
});
