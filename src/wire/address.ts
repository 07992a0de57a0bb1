/**
 * Text forms of the addresses the codecs carry as four big-endian 32-bit words (IPv4 in word 3,
 * words 0-2 zero). For logs and the API, off the packet path: these allocate strings.
 */

export interface ParsedAddress {
  family: 4 | 6;
  words: Uint32Array;
}

function formatV4(w: number): string {
  return `${w >>> 24}.${(w >>> 16) & 0xff}.${(w >>> 8) & 0xff}.${w & 0xff}`;
}

/**
 * '198.18.0.1', or an IPv6 address in the RFC 5952 canonical form: lowercase hex without
 * leading zeros (§4.1, §4.3), the longest run of two or more zero groups as '::', the first
 * one on a tie (§4.2), and IPv4-mapped addresses in mixed notation, '::ffff:198.18.0.1' (§5).
 */
export function formatAddress(family: 4 | 6, words: Uint32Array): string {
  if (family === 4) return formatV4(words[3] as number);
  const w0 = words[0] as number;
  const w1 = words[1] as number;
  const w2 = words[2] as number;
  const w3 = words[3] as number;
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return `::ffff:${formatV4(w3)}`;
  const groups = [w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff];
  // RFC 5952 §4.2.2/§4.2.3: compress the longest run of ≥ 2 zero groups, the first on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number): string => g.toString(16);
  if (bestStart < 0) return groups.map(hex).join(':');
  const head = groups.slice(0, bestStart).map(hex).join(':');
  const tail = groups.slice(bestStart + bestLen).map(hex).join(':');
  return `${head}::${tail}`;
}

/** 'address:port', with the IPv6 address in brackets (RFC 5952 §6): '[2001:db8::1]:443'. */
export function formatEndpoint(family: 4 | 6, words: Uint32Array, port: number): string {
  const a = formatAddress(family, words);
  return family === 4 ? `${a}:${port}` : `[${a}]:${port}`;
}

const V4_PART = /^(?:0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Dotted quad to a uint32, or -1. Leading zeros are refused (they read as octal elsewhere, RFC 6943 §3.1.1). */
function parseV4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    if (!V4_PART.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v;
}

/** Colon-separated 16-bit groups (a trailing dotted quad, when allowed, counts as two); null on a bad group. */
function parseGroups(text: string, allowV4Tail: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseV4(p);
      if (v4 < 0) return null;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else {
      if (!V6_GROUP.test(p)) return null;
      out.push(parseInt(p, 16));
    }
  }
  return out;
}

/**
 * Parse a textual IPv4 (dotted quad) or IPv6 (RFC 4291 §2.2, with '::' and an optional dotted
 * IPv4 tail) address. Zone identifiers and brackets are not accepted. Returns null when the
 * text is not an address.
 */
export function parseAddress(text: string): ParsedAddress | null {
  const words = new Uint32Array(4);
  if (!text.includes(':')) {
    const v4 = parseV4(text);
    if (v4 < 0) return null;
    words[3] = v4;
    return { family: 4, words };
  }
  let groups: number[];
  const dc = text.indexOf('::');
  if (dc >= 0) {
    if (text.indexOf('::', dc + 1) >= 0) return null;
    const head = parseGroups(text.slice(0, dc), false);
    const tail = parseGroups(text.slice(dc + 2), true);
    if (head === null || tail === null) return null;
    // '::' stands for one or more zero groups (RFC 4291 §2.2).
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return null;
    groups = head.concat(new Array<number>(fill).fill(0), tail);
  } else {
    const all = parseGroups(text, true);
    if (all === null || all.length !== 8) return null;
    groups = all;
  }
  for (let i = 0; i < 4; i++) words[i] = (((groups[2 * i] as number) << 16) | (groups[2 * i + 1] as number)) >>> 0;
  return { family: 6, words };
}

/**
 * Address words shared between the connections that have the same address: a sidecar's
 * connections come from a few app addresses to a few destinations, and four words of their own,
 * as a Uint32Array (the view, its ArrayBuffer, the store), cost ~220 bytes of heap per address
 * per connection. The arrays handed out are shared: whoever holds one must never write to it.
 * A cache of the INTERNED_MAX addresses seen last (compared word by word, no string built); an
 * address not in it gets a fresh array, which replaces the oldest entry.
 */
const INTERNED: Uint32Array[] = [];
const INTERNED_MAX = 64;
let internedNext = 0;

/** The shared array holding `words[at..at + 4)` (IPv4 in the last): never write to what it returns. */
export function internAddressWords(words: ArrayLike<number>, at = 0): Uint32Array {
  const w0 = words[at]!;
  const w1 = words[at + 1]!;
  const w2 = words[at + 2]!;
  const w3 = words[at + 3]!;
  for (let i = 0; i < INTERNED.length; i++) {
    const c = INTERNED[i]!;
    if (c[3] === w3 && c[0] === w0 && c[1] === w1 && c[2] === w2) return c;
  }
  const fresh = new Uint32Array(4);
  fresh[0] = w0;
  fresh[1] = w1;
  fresh[2] = w2;
  fresh[3] = w3;
  if (INTERNED.length < INTERNED_MAX) INTERNED.push(fresh);
  else {
    INTERNED[internedNext] = fresh;
    internedNext = (internedNext + 1) % INTERNED_MAX;
  }
  return fresh;
}
