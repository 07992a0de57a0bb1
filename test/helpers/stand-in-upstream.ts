/**
 * An upstream socket for the pipe's unit tests: open, writable, taking every byte at once, and
 * telling `record` of each call the pipe makes (which one, the chunks, the bytes), plus `end`.
 */
import type { UpstreamSocket } from '../../src/proxy/upstream.js';

export type UpstreamCall = { how: 'write' | 'writeOne' | 'end'; chunks: readonly Buffer[]; bytes: number };

export function standInUpstream(record: (call: UpstreamCall) => void): UpstreamSocket {
  return {
    handler: null,
    destroyed: false,
    writable: true,
    writableLength: 0,
    write(chunks: Buffer[], count: number, bytes: number) {
      record({ how: 'write', chunks: chunks.slice(0, count), bytes });
      return bytes;
    },
    writeOne(chunk: Buffer) {
      record({ how: 'writeOne', chunks: [chunk], bytes: chunk.length });
      return chunk.length;
    },
    end() {
      record({ how: 'end', chunks: [], bytes: 0 });
    },
    pause() {},
    resume() {},
  } as unknown as UpstreamSocket;
}
