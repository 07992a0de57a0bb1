import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { formatAddress, formatEndpoint, internAddressWords, parseAddress } from '../../src/wire/address.js';

function w(...words: number[]): Uint32Array {
  return new Uint32Array(words);
}

describe('formatAddress', () => {
  it('formats ipv4 from word 3', () => {
    expect(formatAddress(4, w(0, 0, 0, 0xc6120001))).toBe('198.18.0.1');
    expect(formatAddress(4, w(0, 0, 0, 0xffffffff))).toBe('255.255.255.255');
    expect(formatAddress(4, w(0, 0, 0, 0))).toBe('0.0.0.0');
  });

  it('RFC 5952 §4.2.1: compresses the zero run with double colon', () => {
    expect(formatAddress(6, w(0x20010db8, 0, 0, 1))).toBe('2001:db8::1');
    expect(formatAddress(6, w(0, 0, 0, 0))).toBe('::');
    expect(formatAddress(6, w(0, 0, 0, 1))).toBe('::1');
    expect(formatAddress(6, w(0xfe800000, 0, 0, 0))).toBe('fe80::');
  });

  it('RFC 5952 §4.1 and §4.3: lowercase without leading zeros', () => {
    expect(formatAddress(6, w(0x20010db8, 0x00aa00bb, 0x0ccc0ddd, 0xeeeeffff))).toBe('2001:db8:aa:bb:ccc:ddd:eeee:ffff');
  });

  it('RFC 5952 §4.2.2: does not compress a single zero group', () => {
    expect(formatAddress(6, w(0x20010db8, 0x00000001, 0x00010001, 0x00010001))).toBe('2001:db8:0:1:1:1:1:1');
  });

  it('RFC 5952 §4.2.3: compresses the longest run and the first on a tie', () => {
    expect(formatAddress(6, w(0x20010000, 0x00000001, 0, 0x00000001))).toBe('2001:0:0:1::1');
    expect(formatAddress(6, w(0x20010db8, 0, 0x00010000, 0x00000001))).toBe('2001:db8::1:0:0:1');
  });

  it('RFC 5952 §5: ipv4 mapped uses mixed notation', () => {
    expect(formatAddress(6, w(0, 0, 0xffff, 0xc0000201))).toBe('::ffff:192.0.2.1');
  });

  it('formatEndpoint: brackets ipv6', () => {
    expect(formatEndpoint(4, w(0, 0, 0, 0xc6120001), 443)).toBe('198.18.0.1:443');
    expect(formatEndpoint(6, w(0x20010db8, 0, 0, 1), 443)).toBe('[2001:db8::1]:443');
  });
});

describe('parseAddress', () => {
  it('parses ipv4 into word 3', () => {
    expect(parseAddress('198.18.0.1')).toEqual({ family: 4, words: w(0, 0, 0, 0xc6120001) });
  });

  it('parses ipv6 forms', () => {
    expect(parseAddress('2001:db8::1')).toEqual({ family: 6, words: w(0x20010db8, 0, 0, 1) });
    expect(parseAddress('::')).toEqual({ family: 6, words: w(0, 0, 0, 0) });
    expect(parseAddress('2001:DB8:0:0:0:0:0:1')).toEqual({ family: 6, words: w(0x20010db8, 0, 0, 1) });
    expect(parseAddress('::ffff:192.0.2.1')).toEqual({ family: 6, words: w(0, 0, 0xffff, 0xc0000201) });
    expect(parseAddress('1:2:3:4:5:6:1.2.3.4')).toEqual({ family: 6, words: w(0x10002, 0x30004, 0x50006, 0x01020304) });
    expect(parseAddress('1:2:3:4:5:6:7::')).toEqual({ family: 6, words: w(0x10002, 0x30004, 0x50006, 0x70000) });
  });

  it('rejects what is not an address', () => {
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-4',
      'a.b.c.d',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7::8',
      ':1:2:3:4:5:6:7',
      '12345::',
      'g::1',
      '::1.2.3',
      '1.2.3.4::',
      'fe80::1%eth0',
      '[::1]',
    ]) {
      expect(parseAddress(bad), bad).toBeNull();
    }
  });

  it('property parse inverts format', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
        (v4, groups) => {
          const ws = [0, 1, 2, 3].map((i) => ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0);
          const words = v4 ? w(0, 0, 0, ws[3]!) : w(...ws);
          const family = v4 ? 4 : 6;
          expect(parseAddress(formatAddress(family, words))).toEqual({ family, words });
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('internAddressWords', () => {
  it('hands the same array to equal addresses and a different one to a different address', () => {
    const a = internAddressWords(w(0, 0, 0, 0xc6120001));
    const b = internAddressWords(Uint32Array.of(7, 0, 0, 0, 0xc6120001, 9), 1);
    expect(b).toBe(a);
    expect([...a]).toEqual([0, 0, 0, 0xc6120001]);
    const c = internAddressWords(w(0x20010db8, 0, 0, 0xc6120001));
    expect(c).not.toBe(a);
    expect([...c]).toEqual([0x20010db8, 0, 0, 0xc6120001]);
  });

  it('still answers the right words once more addresses were seen than it keeps', () => {
    const seen = Array.from({ length: 200 }, (_, i) => internAddressWords(w(0, 0, 0, 0x0a000000 + i)));
    for (let i = 0; i < 200; i++) {
      expect(seen[i]![3]).toBe(0x0a000000 + i);
      expect([...internAddressWords(w(0, 0, 0, 0x0a000000 + i))]).toEqual([0, 0, 0, 0x0a000000 + i]);
    }
  });
});
