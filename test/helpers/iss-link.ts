/**
 * For tests that drive a Stack with hand-made segments: a link that remembers the ISS of each
 * SYN-ACK by the app's port (what the final ACK must acknowledge), and a connection owner that
 * consumes whatever arrives.
 */
import type { ConnHandler, TcpConn } from '../../src/tcp/conn.js';
import type { LinkTx } from '../../src/wire/link.js';
import { FlowKey, PacketParser } from '../../src/wire/packet.js';
import { Segment, TcpFlag } from '../../src/wire/segment.js';

export class IssLink implements LinkTx {
  readonly vnetHdr = false;
  readonly txSlotSize = 2048;
  readonly txBuffer = Buffer.alloc(this.txSlotSize);
  readonly issByPort = new Map<number, number>();
  private readonly parser = new PacketParser();
  private readonly seg = new Segment();
  private readonly key = new FlowKey();
  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    if (this.parser.parse(this.txBuffer, offset, length, false, this.seg, this.key) !== 'tcp') return;
    if (this.seg.flags === (TcpFlag.SYN | TcpFlag.ACK)) this.issByPort.set(this.key.dstPort, this.seg.seq);
  }
  txFlush(): void {}
  onTxDrain(): void {}
}

/** Consumes every byte as it arrives and ignores the rest. */
export const CONSUMING_HANDLER: ConnHandler = {
  onEstablished() {},
  onData(c: TcpConn, d: Buffer) {
    c.consume(d.length, 0);
  },
  onFin() {},
  onSendSpace() {},
  onClosed() {},
};
