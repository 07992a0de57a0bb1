/**
 * The stack refuses a SYN that the forwarder recognises as one of its own upstream sockets (a dial
 * routed back into the device): RST, a 'loop' drop, and no state taken.
 */
import { describe, expect, it } from 'vitest';
import type { FlowKeyLike } from '../../src/stack/flow-table.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { DEST, appPacket, stackHarness } from './stack-harness.js';

describe('no loops through the device', () => {
  it("a SYN from one of the forwarder's own sockets gets RST|ACK, counts as 'loop' and takes no place", () => {
    const asked: Array<[number, number, number]> = [];
    const h = stackHarness({
      synBacklog: 1,
      maxConnections: 1,
      isOwnConnection: (k: FlowKeyLike) => {
        asked.push([k.srcPort, k.dst[3]!, k.dstPort]);
        return k.srcPort === 50000;
      },
    });
    for (let i = 0; i < 5; i++) h.send(appPacket({ seq: 1000 + i, flags: TcpFlag.SYN, srcPort: 50000 }));
    const sent = h.link.take();
    expect(sent).toHaveLength(5);
    for (const [i, p] of sent.entries()) {
      expect(p.seg.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
      expect(p.seg.ack).toBe(seqAdd(1000 + i, 1));
      expect(p.flow.dstPort).toBe(50000);
    }
    expect(h.drops).toEqual(['loop', 'loop', 'loop', 'loop', 'loop']);
    expect(h.resets).toEqual(['loop', 'loop', 'loop', 'loop', 'loop']);
    expect(asked[0]).toEqual([50000, DEST, 80]);
    // Nothing was offered to the forwarder, nothing is half-open: the backlog of 1 and the
    // connection limit of 1 are still free for a real app.
    expect(h.syns).toHaveLength(0);
    expect(h.stack.halfOpenCount).toBe(0);
    expect(h.stack.tableSize).toBe(0);
    h.send(appPacket({ seq: 7, flags: TcpFlag.SYN, srcPort: 40000 }));
    expect(h.syns).toHaveLength(1);
    expect(h.drops).toHaveLength(5);
  });
});
