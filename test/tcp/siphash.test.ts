import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SipHash24, SipHashKeyError } from '../../src/tcp/siphash.js';

// Reference vectors of SipHash-2-4 (the reference implementation's vectors.h, "vectors_sip64"):
// key = 00 01 .. 0f, message i = 00 01 .. (i-1), output as the 8 little-endian bytes of the
// 64-bit result. Entry 15 is the worked example of the paper's Appendix A (0xa129ca6149be45e5).
const VECTORS = [
  '310e0edd47db6f72',
  'fd67dc93c539f874',
  '5a4fa9d909806c0d',
  '2d7efbd796666785',
  'b7877127e09427cf',
  '8da699cd64557618',
  'cee3fe586e46c9cb',
  '37d1018bf50002ab',
  '6224939a79f5f593',
  'b0e4a90bdf82009e',
  'f3b9dd94c5bb5d7a',
  'a7ad6b22462fb3f4',
  'fbe50e86bc8f1e75',
  '903d84c02756ea14',
  'eef27a8e90ca23f7',
  'e545be4961ca29a1',
  'db9bc2577fcc2a3f',
  '9447be2cf5e99a69',
  '9cd38d96f0b3c14b',
  'bd6179a71dc96dbb',
  '98eea21af25cd6be',
  'c7673b2eb0cbf2d0',
  '883ea3e395675393',
  'c8ce5ccd8c030ca8',
  '94af49f6c650adb8',
  'eab8858ade92e1bc',
  'f315bb5bb835d817',
  'adcf6b0763612e2f',
  'a5c91da7acaa4dde',
  '716595876650a2a6',
  '28ef495c53a387ad',
  '42c341d8fa92d832',
  'ce7cf2722f512771',
  'e37859f94623f3a7',
  '381205bb1ab0e012',
  'ae97a10fd434e015',
  'b4a31508beff4d31',
  '81396229f0907902',
  '4d0cf49ee5d4dcca',
  '5c73336a76d8bf9a',
  'd0a704536ba93e0e',
  '925958fcd6420cad',
  'a915c29bc8067318',
  '952b79f3bc0aa6d4',
  'f21df2e41d4535f9',
  '87577519048f53a9',
  '10a56cf5dfcd9adb',
  'eb75095ccd986cd0',
  '51a9cb9ecba312e6',
  '96afadfc2ce666c7',
  '72fe52975a4364ee',
  '5a1645b276d592a1',
  'b274cb8ebf87870a',
  '6f9bb4203de7b381',
  'eaecb2a30b22a87f',
  '9924a43cc1315724',
  'bd838d3aafbf8db7',
  '0b1a2a3265d51aea',
  '135079a3231ce660',
  '932b2846e4d70666',
  'e1915f5cb1eca46c',
  'f325965ca16d629f',
  '575ff28e60381be5',
  '724506eb4c328a95',
];

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const MSG = Uint8Array.from({ length: 64 }, (_, i) => i);

/** The 64-bit result as the reference prints it: 8 bytes, little-endian, hex. */
function leHex(h: SipHash24): string {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(h.lo, 0);
  b.writeUInt32LE(h.hi, 4);
  return b.toString('hex');
}

describe('SipHash-2-4', () => {
  it('paper appendix a example 15 byte message', () => {
    const h = new SipHash24(KEY);
    h.hashBytes(MSG, 0, 15);
    expect(h.hi).toBe(0xa129ca61);
    expect(h.lo).toBe(0x49be45e5);
  });

  it('matches all 64 reference vectors', () => {
    const h = new SipHash24(KEY);
    for (let len = 0; len < 64; len++) {
      h.hashBytes(MSG, 0, len);
      expect(leHex(h), `length ${len}`).toBe(VECTORS[len]);
    }
  });

  it('hashBytes: returns the low half', () => {
    const h = new SipHash24(KEY);
    expect(h.hashBytes(MSG, 0, 15)).toBe(0x49be45e5);
  });

  it('hashBytes: honours the offset', () => {
    const h = new SipHash24(KEY);
    const shifted = new Uint8Array(70);
    shifted.set(MSG.subarray(0, 20), 5);
    h.hashBytes(shifted, 5, 20);
    expect(leHex(h)).toBe(VECTORS[20]);
  });

  it('word stream equals little endian bytes (reference vectors 0,4,..,60)', () => {
    const h = new SipHash24(KEY);
    const view = new DataView(MSG.buffer);
    for (let len = 0; len < 64; len += 4) {
      h.begin();
      for (let i = 0; i < len; i += 4) h.word(view.getUint32(i, true));
      h.finish();
      expect(leHex(h), `length ${len}`).toBe(VECTORS[len]);
    }
  });

  it('instance is reusable and deterministic', () => {
    const h = new SipHash24(KEY);
    const a = h.begin().word(1).word(2).word(3).finish();
    h.hashBytes(MSG, 0, 33);
    const b = h.begin().word(1).word(2).word(3).finish();
    expect(b).toBe(a);
  });

  it('different keys give different hashes', () => {
    const k2 = KEY.slice();
    k2[15] = 0xff;
    const a = new SipHash24(KEY).begin().word(0x01020304).finish();
    const b = new SipHash24(k2).begin().word(0x01020304).finish();
    expect(a).not.toBe(b);
  });

  it('word stream matches bytes for random input (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 12, size: 'max' }), (key, words) => {
        const h = new SipHash24(key);
        const bytes = Buffer.alloc(words.length * 4);
        words.forEach((w, i) => bytes.writeUInt32LE(w, 4 * i));
        h.hashBytes(bytes, 0, bytes.length);
        const hi = h.hi;
        const lo = h.lo;
        h.begin();
        for (const w of words) h.word(w);
        h.finish();
        expect([h.hi, h.lo]).toEqual([hi, lo]);
      }),
    );
  });

  it('key of wrong length is rejected with code', () => {
    expect(() => new SipHash24(new Uint8Array(15))).toThrow(SipHashKeyError);
    try {
      new SipHash24(new Uint8Array(17));
      expect.unreachable();
    } catch (err) {
      expect((err as SipHashKeyError).code).toBe('ERR_SIPHASH_KEY');
    }
  });
});
