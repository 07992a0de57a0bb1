/** A connection's identity for tests that publish events on a hub without a stack. */
import type { ConnFlow, ConnIdentity } from '../../src/tcp/events.js';

export function identity(id: number, openedAt = 0, flow: ConnFlow | null = null): ConnIdentity {
  return { id, openedAt, flow, stateSince: openedAt, bytesIn: 0, bytesOut: 0, retransmits: 0, handshakeMs: -1 };
}
