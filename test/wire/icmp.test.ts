import { describe, it, expect } from 'vitest';
import {
  IcmpView,
  emitIcmpEcho,
  emitIcmpUnreachable,
  icmpErrorQuoteLength,
  Icmpv4Type,
  Icmpv4UnreachableCode,
  Icmpv6Type,
  Icmpv6UnreachableCode,
  ICMPV4_MAX_QUOTE,
  ICMPV6_MAX_QUOTE,
} from '../../src/wire/icmp.js';
import { pseudoSumV6, pseudoSumV6At } from '../../src/wire/checksum.js';
import { ECHO_REP_V4, ECHO_REP_V6, ECHO_REQ_V4, EXT_V6, SYN_V4, UNREACH_V4, UNREACH_V6 } from './golden.js';
import { hex } from './helpers.js';

const OURS6 = new Uint32Array([0x20010db8, 0, 0, 2]);
const CLIENT6 = new Uint32Array([0x20010db8, 0, 0, 1]);

describe('IcmpView: deconstruct', () => {
  it('reads golden v4 echo request', () => {
    const p = hex(ECHO_REQ_V4);
    const v = new IcmpView();
    expect(v.reset(p, 20, 16, 4)).toBe('ok');
    expect(v.type).toBe(Icmpv4Type.ECHO_REQUEST);
    expect(v.code).toBe(0);
    expect(v.checksum).toBe(0x2e37);
    expect(v.echoId).toBe(0x1234);
    expect(v.echoSeq).toBe(1);
    expect(v.isError).toBe(false);
    expect(p.subarray(v.bodyOffset, v.bodyOffset + v.bodyLength).toString()).toBe('pingdata');
    expect(v.verifyChecksum(0)).toBe(true);
  });

  it('reads golden v4 unreachable and its embedded packet', () => {
    const p = hex(UNREACH_V4);
    const v = new IcmpView();
    expect(v.reset(p, 20, 68, 4)).toBe('ok');
    expect(v.type).toBe(Icmpv4Type.DEST_UNREACHABLE);
    expect(v.code).toBe(Icmpv4UnreachableCode.PORT);
    expect(v.isError).toBe(true);
    expect(v.verifyChecksum(0)).toBe(true);
    expect(p.subarray(v.bodyOffset, v.bodyOffset + v.bodyLength)).toEqual(hex(SYN_V4));
  });

  it('verifies v6 checksum over the pseudo header', () => {
    const p = hex(UNREACH_V6);
    const v = new IcmpView();
    expect(v.reset(p, 40, 96, 6)).toBe('ok');
    expect(v.type).toBe(Icmpv6Type.DEST_UNREACHABLE);
    expect(v.code).toBe(Icmpv6UnreachableCode.PORT);
    expect(v.isError).toBe(true);
    expect(v.verifyChecksum(pseudoSumV6At(p, 0, 58, 96))).toBe(true);
    expect(v.verifyChecksum(0)).toBe(false);
  });

  it('v6 echo reply is informational', () => {
    const p = hex(ECHO_REP_V6);
    const v = new IcmpView();
    v.reset(p, 40, 16, 6);
    expect(v.type).toBe(Icmpv6Type.ECHO_REPLY);
    expect(v.isError).toBe(false);
  });

  it('reads mtu of frag needed and packet too big', () => {
    const v = new IcmpView();
    v.reset(hex('03 04 00 00 00 00 05 dc'), 0, 8, 4);
    expect(v.mtu).toBe(1500);
    v.reset(hex('02 00 00 00 00 00 05 00'), 0, 8, 6);
    expect(v.mtu).toBe(1280);
  });

  it('shorter than 8 bytes is truncated', () => {
    expect(new IcmpView().reset(hex(ECHO_REQ_V4), 20, 7, 4)).toBe('truncated');
  });
});

describe('ICMP emit: construct', () => {
  it('echo reply v4 matches golden', () => {
    const req = hex(ECHO_REQ_V4);
    const out = Buffer.alloc(16);
    expect(emitIcmpEcho(out, 0, Icmpv4Type.ECHO_REPLY, 0x1234, 1, req, 28, 8, 0)).toBe(16);
    expect(out).toEqual(hex(ECHO_REP_V4).subarray(20));
  });

  it('echo reply v6 matches golden', () => {
    const req = hex(ECHO_REQ_V4);
    const out = Buffer.alloc(16);
    emitIcmpEcho(out, 0, Icmpv6Type.ECHO_REPLY, 0x1234, 1, req, 28, 8, pseudoSumV6(OURS6, CLIENT6, 58, 16));
    expect(out).toEqual(hex(ECHO_REP_V6).subarray(40));
  });

  it('unreachable v4 matches golden', () => {
    const orig = hex(SYN_V4);
    const out = Buffer.alloc(68);
    expect(emitIcmpUnreachable(out, 0, 4, Icmpv4UnreachableCode.PORT, orig, 0, orig.length, 0)).toBe(68);
    expect(out).toEqual(hex(UNREACH_V4).subarray(20));
  });

  it('unreachable v6 matches golden', () => {
    const orig = hex(EXT_V6);
    const out = Buffer.alloc(96);
    const n = emitIcmpUnreachable(out, 0, 6, Icmpv6UnreachableCode.PORT, orig, 0, orig.length, pseudoSumV6(OURS6, CLIENT6, 58, 96));
    expect(n).toBe(96);
    expect(out).toEqual(hex(UNREACH_V6).subarray(40));
  });

  it('RFC 1191 frag needed carries next hop mtu', () => {
    const orig = hex(SYN_V4);
    const out = Buffer.alloc(68);
    emitIcmpUnreachable(out, 0, 4, Icmpv4UnreachableCode.FRAGMENTATION_NEEDED, orig, 0, 60, 0, 1400);
    const v = new IcmpView();
    v.reset(out, 0, 68, 4);
    expect(v.mtu).toBe(1400);
    expect(out.readUInt16BE(4)).toBe(0);
    expect(v.verifyChecksum(0)).toBe(true);
  });

  it('mtu is not written for other codes', () => {
    const out = Buffer.alloc(68, 0xee);
    emitIcmpUnreachable(out, 0, 4, Icmpv4UnreachableCode.HOST, hex(SYN_V4), 0, 60, 0, 1400);
    expect(out.readUInt32BE(4)).toBe(0);
  });

  it('RFC 1812 v4 quote is cut to fit 576 octets', () => {
    expect(ICMPV4_MAX_QUOTE).toBe(548);
    expect(icmpErrorQuoteLength(4, 1500)).toBe(548);
    expect(icmpErrorQuoteLength(4, 28)).toBe(28);
    const orig = Buffer.alloc(1500, 0x42);
    const out = Buffer.alloc(600, 0xee);
    expect(emitIcmpUnreachable(out, 0, 4, 3, orig, 0, 1500, 0)).toBe(556);
    expect(out[556]).toBe(0xee);
  });

  it('RFC 4443 v6 quote is cut to fit the minimum mtu', () => {
    expect(ICMPV6_MAX_QUOTE).toBe(1232);
    expect(icmpErrorQuoteLength(6, 9000)).toBe(1232);
    const orig = Buffer.alloc(1500, 0x42);
    const out = Buffer.alloc(1300);
    expect(emitIcmpUnreachable(out, 0, 6, 4, orig, 0, 1500, 0)).toBe(1240);
  });

  it('quoted packet may overlap the output', () => {
    // The invoking packet sits where the message is written (in-place reply).
    const buf = Buffer.alloc(200);
    hex(SYN_V4).copy(buf, 0);
    const n = emitIcmpUnreachable(buf, 0, 4, Icmpv4UnreachableCode.PORT, buf, 0, 60, 0);
    expect(buf.subarray(0, n)).toEqual(hex(UNREACH_V4).subarray(20));
  });
});
