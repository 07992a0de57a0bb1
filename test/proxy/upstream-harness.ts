/**
 * Helpers for tests of upstream sockets (src/proxy/upstream.ts): a handler that records what a
 * socket reports, and a dial to a loopback port that resolves once connected.
 */
import type { UpstreamHandler, UpstreamSocket, UpstreamSockets } from '../../src/proxy/upstream.js';

export class RecordingHandler implements UpstreamHandler {
  readonly log: string[] = [];
  readonly chunks: Buffer[] = [];
  connected: (() => void) | null = null;
  failed: ((code: string) => void) | null = null;
  /** Called after each chunk (a test may pause the socket from here). */
  onChunk: ((chunk: Buffer) => void) | null = null;

  onUpstreamConnect(): void {
    this.log.push('connect');
    this.connected?.();
  }
  onUpstreamConnectFailed(_s: UpstreamSocket, code: string): void {
    this.log.push(`connect-failed ${code}`);
    this.failed?.(code);
  }
  onUpstreamData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.onChunk?.(chunk);
  }
  onUpstreamEnd(): void {
    this.log.push('end');
  }
  onUpstreamError(code: string): void {
    this.log.push(`error ${code}`);
  }
  onUpstreamDrain(): void {
    this.log.push('drain');
  }
  onUpstreamClose(): void {
    this.log.push('close');
  }
  onUpstreamIdle(): void {
    this.log.push('idle');
  }
  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const LOOPBACK = new Uint32Array([0, 0, 0, 0x7f000001]);

/** Connects to 127.0.0.1:port; resolves with the socket once connected (or rejects with the errno name). */
export function dial(sockets: UpstreamSockets, port: number, handler: UpstreamHandler & Partial<RecordingHandler> = new RecordingHandler()): Promise<UpstreamSocket> {
  const socket = sockets.connect(handler, 4, LOOPBACK, port, null);
  if (typeof socket === 'string') return Promise.reject(new Error(socket));
  if (!socket.connecting) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const rec = handler as RecordingHandler;
    rec.connected = () => resolve(socket);
    rec.failed = (code) => reject(new Error(code));
  });
}

export async function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
