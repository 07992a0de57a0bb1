import { describe, it, expect } from 'vitest';
import { Ipv6View, emitIpv6, MAX_EXTENSION_HEADERS } from '../../src/wire/ipv6.js';
import { EXT_V6, SYNACK_V6, UDP_V6 } from './golden.js';
import { hex, placed } from './helpers.js';

const TCP20 = hex('04 57 08 ae 00 00 00 05 00 00 00 06 50 18 00 64 00 00 00 00');

/** An IPv6 packet (2001:db8::1 → 2001:db8::2) whose payload is `parts` concatenated, first next header `nh`. */
function v6(nh: number, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts);
  const h = hex(EXT_V6).subarray(0, 40);
  const p = Buffer.concat([h, payload]);
  p.writeUInt16BE(payload.length, 4);
  p[6] = nh;
  return p;
}

/** A generic TLV-style extension header (Hop-by-Hop, Destination Options, Routing) of `units` × 8 octets. */
function ext(next: number, units: number, fill = 0): Buffer {
  const b = Buffer.alloc(units * 8, fill);
  b[0] = next;
  b[1] = units - 1;
  if (fill === 0 && units * 8 > 2) {
    b[2] = 1; // PadN
    b[3] = units * 8 - 4;
  }
  return b;
}

function fragHeader(next: number, offsetUnits: number, more: boolean, id = 0xdeadbeef): Buffer {
  const b = Buffer.alloc(8);
  b[0] = next;
  b.writeUInt16BE((offsetUnits << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(id, 4);
  return b;
}

describe('Ipv6View: deconstruct', () => {
  it('reads the fixed header of golden synack', () => {
    const v = new Ipv6View();
    const p = hex(SYNACK_V6);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.version).toBe(6);
    expect(v.trafficClass).toBe(0);
    expect(v.flowLabel).toBe(0);
    expect(v.payloadLength).toBe(40);
    expect(v.nextHeader).toBe(6);
    expect(v.hopLimit).toBe(64);
    expect(v.totalLength).toBe(80);
    expect(v.upperProtocol).toBe(6);
    expect(v.upperOffset).toBe(40);
    expect(v.upperLength).toBe(40);
    expect(v.extensionCount).toBe(0);
  });

  it('copies addresses as words into the callers array at an offset', () => {
    const v = new Ipv6View();
    const p = hex(SYNACK_V6);
    v.reset(p, 0, p.length);
    const out = new Uint32Array(10).fill(7);
    v.readSrc(out, 1);
    v.readDst(out, 5);
    expect(Array.from(out)).toEqual([7, 0x20010db8, 0, 0, 2, 0x20010db8, 0, 0, 1, 7]);
  });

  it('reads traffic class ecn and flow label', () => {
    const p = hex(UDP_V6);
    p.writeUInt32BE(0x6b9abcde, 0); // TC 0xb9, flow label 0xabcde
    const v = new Ipv6View();
    v.reset(p, 0, p.length);
    expect(v.trafficClass).toBe(0xb9);
    expect(v.ecn).toBe(1);
    expect(v.flowLabel).toBe(0xabcde);
  });

  it('ignores bytes after the payload and reads at an offset', () => {
    const p = placed(hex(UDP_V6), 3, 9);
    const v = new Ipv6View();
    expect(v.reset(p, 3, p.length - 3)).toBe('ok');
    expect(v.upperProtocol).toBe(17);
    expect(v.upperOffset).toBe(43);
    expect(v.upperLength).toBe(11);
  });
});

describe('Ipv6View: extension header walk (RFC 8200 §4)', () => {
  const v = new Ipv6View();

  it('walks hop by hop and destination options to tcp', () => {
    const p = hex(EXT_V6);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.nextHeader).toBe(0);
    expect(v.upperProtocol).toBe(6);
    expect(v.upperOffset).toBe(40 + 8 + 16);
    expect(v.upperLength).toBe(24);
    expect(v.extensionCount).toBe(2);
  });

  it('skips a routing header with segments left zero', () => {
    const rh = ext(6, 3);
    rh[2] = 4; // SRH type
    rh[3] = 0; // Segments Left
    const p = v6(43, rh, TCP20);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.upperOffset).toBe(40 + 24);
  });

  it('RFC 8200 §4.4: routing header with segments left is routing', () => {
    const rh = ext(6, 3);
    rh[2] = 4;
    rh[3] = 1;
    const p = v6(43, rh, TCP20);
    expect(v.reset(p, 0, p.length)).toBe('routing');
  });

  it('RFC 4302 ah length counts 4 octet units plus 2', () => {
    // AH with a 96-bit ICV: Payload Len = (12 + 12) / 4 - 2 = 4 → 24 octets.
    const ah = Buffer.alloc(24, 0x33);
    ah[0] = 6;
    ah[1] = 4;
    const p = v6(51, ah, TCP20);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.upperProtocol).toBe(6);
    expect(v.upperOffset).toBe(40 + 24);
  });

  it('esp ends the walk', () => {
    const p = v6(60, ext(50, 1), Buffer.alloc(32, 0x77));
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.upperProtocol).toBe(50);
    expect(v.upperOffset).toBe(48);
  });

  it('no next header ends the walk', () => {
    const p = v6(59);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.upperProtocol).toBe(59);
    expect(v.upperLength).toBe(0);
  });

  it('first fragment is fragment with its fields', () => {
    const p = v6(44, fragHeader(6, 0, true), TCP20);
    expect(v.reset(p, 0, p.length)).toBe('fragment');
    expect(v.upperProtocol).toBe(6);
    expect(v.fragmentOffset).toBe(0);
    expect(v.moreFragments).toBe(true);
    expect(v.fragmentId).toBe(0xdeadbeef);
  });

  it('non first fragment is fragment with offset in octets', () => {
    const p = v6(44, fragHeader(6, 185, false), Buffer.alloc(16));
    expect(v.reset(p, 0, p.length)).toBe('fragment');
    expect(v.fragmentOffset).toBe(185 * 8);
    expect(v.moreFragments).toBe(false);
  });

  it('RFC 6946 atomic fragment is processed as a whole packet', () => {
    const p = v6(44, fragHeader(6, 0, false), TCP20);
    expect(v.reset(p, 0, p.length)).toBe('ok');
    expect(v.upperProtocol).toBe(6);
    expect(v.upperOffset).toBe(48);
  });

  it('RFC 8200 §4.3: hop by hop after another header is ext order', () => {
    const p = v6(60, ext(0, 1), ext(6, 1), TCP20);
    expect(v.reset(p, 0, p.length)).toBe('ext_order');
  });

  it('extension header longer than the payload is ext overrun', () => {
    const p = v6(0, ext(6, 2).subarray(0, 12));
    p[41] = 1; // claims 16 octets, 12 present
    expect(v.reset(p, 0, p.length)).toBe('ext_overrun');
  });

  it('extension header without room for its length octet is ext overrun', () => {
    const p = v6(60, Buffer.from([6]));
    expect(v.reset(p, 0, p.length)).toBe('ext_overrun');
  });

  it('truncated fragment header is ext overrun', () => {
    const p = v6(44, fragHeader(6, 0, false).subarray(0, 6));
    expect(v.reset(p, 0, p.length)).toBe('ext_overrun');
  });

  it('ah longer than the payload is ext overrun', () => {
    const ah = Buffer.alloc(8);
    ah[0] = 6;
    ah[1] = 255;
    expect(v.reset(v6(51, ah, TCP20), 0, 8 + 20 + 40)).toBe('ext_overrun');
  });

  it('chain bounded by payload length not buffer length', () => {
    // The buffer holds the whole header, but Payload Length stops short of it.
    const p = v6(60, ext(6, 2), TCP20);
    p.writeUInt16BE(8, 4);
    expect(v.reset(p, 0, p.length)).toBe('ext_overrun');
  });

  it('more than MAX EXTENSION HEADERS is ext limit', () => {
    const chain: Buffer[] = [];
    for (let i = 0; i <= MAX_EXTENSION_HEADERS; i++) chain.push(ext(60, 1));
    chain.push(ext(6, 1));
    const p = v6(60, ...chain, TCP20);
    expect(v.reset(p, 0, p.length)).toBe('ext_limit');
    // Exactly the limit is fine.
    const ok = v6(60, ...chain.slice(2), TCP20);
    expect(v.reset(ok, 0, ok.length)).toBe('ok');
    expect(v.extensionCount).toBe(MAX_EXTENSION_HEADERS);
  });
});

describe('Ipv6View: rejects impossible lengths', () => {
  const v = new Ipv6View();

  it('shorter than 40 bytes is truncated', () => {
    const p = hex(SYNACK_V6);
    expect(v.reset(p, 0, 39)).toBe('truncated');
  });

  it('version other than 6 is bad version', () => {
    const p = hex(SYNACK_V6);
    p[0] = 0x40;
    expect(v.reset(p, 0, p.length)).toBe('bad_version');
  });

  it('payload length beyond the buffer is bad payload length', () => {
    const p = hex(SYNACK_V6);
    expect(v.reset(p, 0, p.length - 1)).toBe('bad_payload_length');
  });

  it('RFC 2675 zero payload length with hop by hop is jumbogram', () => {
    const p = v6(0, ext(6, 1), TCP20);
    p.writeUInt16BE(0, 4);
    expect(v.reset(p, 0, p.length)).toBe('jumbogram');
  });
});

describe('emitIpv6: construct', () => {
  it('writes the golden synack fixed header', () => {
    const out = Buffer.alloc(40, 0xaa);
    const src = new Uint32Array([0x20010db8, 0, 0, 2]);
    const dst = new Uint32Array([0x20010db8, 0, 0, 1]);
    expect(emitIpv6(out, 0, src, dst, 6, 40)).toBe(40);
    expect(out).toEqual(hex(SYNACK_V6).subarray(0, 40));
  });

  it('writes traffic class flow label and word offsets', () => {
    const out = Buffer.alloc(42);
    const words = new Uint32Array([0, 0x20010db8, 0, 0, 2, 0x20010db8, 0, 0, 1]);
    emitIpv6(out, 2, words, words, 17, 0, 255, 0xb9, 0xabcde, 1, 5);
    expect(out.subarray(2, 10)).toEqual(hex('6b 9a bc de 00 00 11 ff'));
    const v = new Ipv6View();
    expect(v.reset(out, 2, 40)).toBe('ok');
    const a = new Uint32Array(4);
    v.readDst(a);
    expect(Array.from(a)).toEqual([0x20010db8, 0, 0, 1]);
  });
});
