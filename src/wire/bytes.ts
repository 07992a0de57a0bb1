/**
 * Big-endian loads and stores by plain indexing. Unlike Buffer#readUInt16BE these never throw
 * (a byte read past the end is undefined, which the bit operators turn into 0), and V8 inlines
 * them. Views call them only after `reset()` has checked the lengths.
 */

export function get16(b: Uint8Array, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number);
}

export function get32(b: Uint8Array, o: number): number {
  return (
    (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>>
    0
  );
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** A shared zero-length Buffer for "no bytes" (never written to). */
export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);
