import { describe, it, expect } from 'vitest';
import { UdpView, emitUdpHeader, finishUdpChecksum } from '../../src/wire/udp.js';
import { pseudoSumV4, pseudoSumV4At, pseudoSumV6At } from '../../src/wire/checksum.js';
import { UDP_V4, UDP_V6 } from './golden.js';
import { hex } from './helpers.js';

describe('UdpView', () => {
  it('reads every field of golden v4 datagram', () => {
    const p = hex(UDP_V4);
    const v = new UdpView();
    expect(v.reset(p, 20, 14)).toBe('ok');
    expect(v.srcPort).toBe(5353);
    expect(v.dstPort).toBe(53);
    expect(v.length).toBe(14);
    expect(v.checksum).toBe(0x4b24);
    expect(v.payloadOffset).toBe(28);
    expect(v.payloadLength).toBe(6);
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 17, 14), false)).toBe(true);
  });

  it('verifies odd length v6 datagram', () => {
    const p = hex(UDP_V6);
    const v = new UdpView();
    expect(v.reset(p, 40, 11)).toBe('ok');
    expect(v.verifyChecksum(pseudoSumV6At(p, 0, 17, 11), true)).toBe(true);
    p[50] = p[50]! ^ 1;
    expect(v.verifyChecksum(pseudoSumV6At(p, 0, 17, 11), true)).toBe(false);
  });

  it('RFC 768 zero checksum means none over ipv4 only', () => {
    const p = hex(UDP_V4);
    p.writeUInt16BE(0, 26);
    const v = new UdpView();
    v.reset(p, 20, 14);
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 17, 14), false)).toBe(true);
    // RFC 8200 §8.1: over IPv6 a zero checksum is invalid.
    expect(v.verifyChecksum(pseudoSumV4At(p, 0, 17, 14), true)).toBe(false);
  });

  it('shorter than 8 bytes is truncated', () => {
    expect(new UdpView().reset(hex(UDP_V4), 20, 7)).toBe('truncated');
  });

  it('length field below 8 or beyond the ip payload is bad length', () => {
    const p = hex(UDP_V4);
    const v = new UdpView();
    p.writeUInt16BE(7, 24);
    expect(v.reset(p, 20, 14)).toBe('bad_length');
    p.writeUInt16BE(15, 24);
    expect(v.reset(p, 20, 14)).toBe('bad_length');
  });

  it('length field shorter than the ip payload bounds the datagram', () => {
    const p = hex(UDP_V4);
    p.writeUInt16BE(10, 24);
    const v = new UdpView();
    expect(v.reset(p, 20, 14)).toBe('ok');
    expect(v.payloadLength).toBe(2);
  });
});

describe('emitUdpHeader + finishUdpChecksum', () => {
  it('writes the golden v4 datagram', () => {
    const out = hex(UDP_V4);
    out.fill(0xee, 20, 28);
    expect(emitUdpHeader(out, 20, 5353, 53, 6)).toBe(8);
    finishUdpChecksum(out, 20, 14, pseudoSumV4At(out, 0, 17, 14));
    expect(out).toEqual(hex(UDP_V4));
  });

  it('writes the golden odd length v6 datagram', () => {
    const out = hex(UDP_V6);
    out.fill(0, 40, 48);
    emitUdpHeader(out, 40, 5353, 53, 3);
    finishUdpChecksum(out, 40, 11, pseudoSumV6At(out, 0, 17, 11));
    expect(out).toEqual(hex(UDP_V6));
  });

  it('RFC 768 computed zero is sent as all ones', () => {
    // Choose the last payload word so the sum over everything is 0xffff: the checksum is then 0.
    const d = Buffer.alloc(12);
    emitUdpHeader(d, 0, 1000, 2000, 4);
    const pseudo = pseudoSumV4(0x0a000001, 0x0a000002, 17, 12);
    finishUdpChecksum(d, 0, 12, pseudo);
    const c = d.readUInt16BE(6);
    d.writeUInt16BE(0, 6);
    d.writeUInt16BE(c, 10);
    finishUdpChecksum(d, 0, 12, pseudo);
    expect(d.readUInt16BE(6)).toBe(0xffff);
    const v = new UdpView();
    v.reset(d, 0, 12);
    expect(v.verifyChecksum(pseudo, false)).toBe(true);
  });
});
