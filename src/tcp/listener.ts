/**
 * The listener's rules: what a SYN for no connection negotiates, how it is answered without state
 * when the SYN backlog is full, and the segments replayed into the connection made once the
 * forwarder decided. Plain inputs, a verdict or a filled segment out; the stack acts on them.
 *
 * - RFC 4987 §3.6 (SYN cookies): the SYN-ACK's ISS encodes what the handshake needs (the peer's
 *   MSS, rounded down); window scale and SACK-permitted survive only when both sides use
 *   timestamps, riding in our TSval and coming back in the peer's TSecr (as Linux). Without
 *   timestamps a cookie connection has neither.
 * - Admission, in order: our own dial looping back through the device is refused first
 *   (statelessly), then a SYN over --max-connections or under --memory-limit pressure (RST: the
 *   app sees ECONNREFUSED at once); with the half-open connections at --syn-backlog, RFC 4987
 *   §3.6 SYN cookies answer; below it the SYN waits for the forwarder (the deferred handshake).
 *   A bare ACK for no connection is checked as a cookie only while cookies may be outstanding
 *   (Linux's tcp_synq_no_recent_overflow): a stray ACK costs no hash otherwise.
 * - RFC 9293 §3.7.1: without an MSS option the peer's MSS is 536 (IPv4) / 1220 (IPv6).
 * - RFC 7323 §2.3: the SYN-ACK offers window scaling only to a SYN that offered it; §5.4 the
 *   cookie SYN-ACK's TSval is on the connection's own timestamp clock (its per-tuple offset).
 * - The deferred handshake: the SYN is kept as a `SynOffer` while the forwarder dials; once the
 *   upstream connected, the SYN is replayed into a new connection (and, after a cookie, the app's
 *   final ACK too: the app believes the handshake is done).
 * - RFC 6191 §2 / RFC 1122 §4.2.2.13: a SYN that replaced a TIME-WAIT record opens its
 *   connection with an ISS fixed past the old incarnation's SND.NXT (`nextIssAfterTimeWait`);
 *   a cookie connection's ISS is the cookie; any other gets a fresh RFC 6528 ISN.
 * - RFC 9293 §3.10.7.1: a refused SYN gets RST|ACK acknowledging it (the app sees
 *   ECONNREFUSED); after a cookie the app thinks it is connected, so the RST is in its window.
 */
import { FlowKey } from '../wire/packet.js';
import { OutSegment, Segment, TcpFlag } from '../wire/segment.js';
import type { TcpConfig } from './config.js';
import type { IsnGenerator } from './isn.js';
import { seqAdd } from './seq.js';
import type { SynCookies } from './syncookie.js';
import { nextIssAfterTimeWait, tsClock, type TimeWaitRecord } from './time-wait.js';
import { peerMssOrDefault } from './defaults.js';

/** What a SYN negotiated, kept compactly while the forwarder decides (a pending SYN implements it). */
export interface SynOffer {
  /** The peer's ISN (its SYN's sequence number). */
  clientIsn: number;
  window: number;
  /** The peer's MSS option (0: none), or the MSS a cookie carried. */
  mss: number;
  /** The peer's window shift (-1: no option). */
  wscale: number;
  sackPermitted: boolean;
  tsPresent: boolean;
  tsVal: number;
  /** The handshake was completed statelessly with a SYN cookie: our ISS is `cookieIss`. */
  fromCookie: boolean;
  cookieIss: number;
  /** Our ISS when fixed in advance (a SYN that replaced a TIME-WAIT record, RFC 6191), else -1. */
  issOverride: number;
}

/** A segment for no connection that may open one: SYN alone (no ACK, no FIN; RSTs are discarded before). */
export function opensConnection(flags: number): boolean {
  return (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.FIN)) === TcpFlag.SYN;
}

/**
 * What the listener does with a SYN for no connection:
 * - 'loop': the forwarder's own upstream socket (its dial routed back into the device): RST;
 * - 'conn_limit': connections (pending ones included) at --max-connections: RST;
 * - 'memory_limit': buffers near --memory-limit: RST;
 * - 'cookie': half-open connections at --syn-backlog: a SYN cookie SYN-ACK, no state (RFC 4987);
 * - 'pending': keep the SYN and offer it to the forwarder.
 */
export type ListenVerdict = 'loop' | 'conn_limit' | 'memory_limit' | 'cookie' | 'pending';

export function listenVerdict(
  ownConnection: boolean,
  connections: number,
  maxConnections: number,
  memoryAdmits: boolean,
  halfOpen: number,
  synBacklog: number,
): ListenVerdict {
  if (ownConnection) return 'loop';
  if (connections >= maxConnections) return 'conn_limit';
  if (!memoryAdmits) return 'memory_limit';
  return halfOpen >= synBacklog ? 'cookie' : 'pending';
}

/**
 * Whether a segment for no connection is worth checking as a cookie's final ACK: an ACK alone
 * while a cookie SYN-ACK sent at `lastCookieSentAt` may still be valid (`cookieLifetimeMs`).
 */
export function mayBeCookieAck(flags: number, now: number, lastCookieSentAt: number, cookieLifetimeMs: number): boolean {
  return (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.FIN)) === TcpFlag.ACK && now - lastCookieSentAt < cookieLifetimeMs;
}


/**
 * Take what a SYN negotiated. `replaced`: the TIME-WAIT record of the 4-tuple the SYN was accepted
 * over (time-wait.ts 'accept_syn'), or null. RFC 6191 §2 / RFC 1122 §4.2.2.13 (1): the new
 * incarnation's ISS is then fixed above the old one's sequence space (`nextIssAfterTimeWait`).
 */
export function offerFromSyn(offer: SynOffer, syn: Segment, replaced: TimeWaitRecord | null): void {
  const o = syn.options;
  offer.clientIsn = syn.seq;
  offer.window = syn.window;
  offer.mss = o.mss;
  offer.wscale = o.wscale;
  offer.sackPermitted = o.sackPermitted;
  offer.tsPresent = o.tsPresent;
  offer.tsVal = o.tsVal;
  offer.fromCookie = false;
  offer.cookieIss = 0;
  offer.issOverride = replaced === null ? -1 : nextIssAfterTimeWait(replaced);
}

/**
 * RFC 4987 §3.6: answer a SYN without state. Fills `out` with the SYN-ACK whose ISS is the cookie
 * (returned). Window scale and SACK-permitted are offered only when the SYN and we both use
 * timestamps: then they ride in our TSval. What rides there is the PEER's shift (RFC 7323 §2.3: it
 * scales every window the peer sends us); ours is fixed by the configuration and advertised again.
 */
export function cookieSynAck(
  out: OutSegment,
  syn: Segment,
  key: FlowKey,
  now: number,
  cfg: TcpConfig,
  cookies: SynCookies,
  isn: IsnGenerator,
): number {
  const o = syn.options;
  const mss = peerMssOrDefault(o.mss, key.family);
  const iss = cookies.encode(key.family, key.dst, key.dstPort, key.src, key.srcPort, syn.seq, mss, now);
  out.clear();
  out.seq = iss;
  out.ack = seqAdd(syn.seq, 1);
  out.flags = TcpFlag.SYN | TcpFlag.ACK;
  out.window = Math.min(65535, cfg.rcvBufBytes);
  out.options.mss = cfg.mss;
  if (o.tsPresent && cfg.timestamps) {
    const sack = o.sackPermitted && cfg.sack;
    out.options.tsPresent = true;
    // The same timestamp clock the connection will use later (its per-tuple offset), or the
    // peer's PAWS check would see our TSval jump.
    const tsOffset = isn.tsOffset(key.family, key.dst, key.dstPort, key.src, key.srcPort);
    out.options.tsVal = cookies.encodeTsOptions(tsClock(now, tsOffset), o.wscale, sack);
    out.options.tsEcr = o.tsVal;
    if (o.wscale >= 0) out.options.wscale = cfg.wscale;
    out.options.sackPermitted = sack;
  }
  return iss;
}

/**
 * RFC 4987 §3.6: the MSS a bare ACK's cookie (ACK − 1) carries, or -1 when the cookie is not
 * valid for this 4-tuple and client ISN (SEQ − 1) at `now`.
 */
export function cookieMss(ack: Segment, key: FlowKey, now: number, cookies: SynCookies): number {
  return cookies.decode(key.family, key.dst, key.dstPort, key.src, key.srcPort, seqAdd(ack.seq, -1), seqAdd(ack.ack, -1), now);
}

/**
 * Rebuild the SYN's offer from the ACK that brought a valid cookie back (`mss` from `cookieMss`):
 * window scale and SACK-permitted only if the echoed TSecr carries them.
 */
export function offerFromCookieAck(offer: SynOffer, ack: Segment, mss: number, cookies: SynCookies): void {
  const o = ack.options;
  let wscale = -1;
  let sack = false;
  if (o.tsPresent) {
    const decoded = cookies.decodeTsOptions(o.tsEcr);
    if (decoded !== null) {
      wscale = decoded.wscale;
      sack = decoded.sackPermitted;
    }
  }
  offer.clientIsn = seqAdd(ack.seq, -1);
  offer.window = ack.window;
  offer.mss = mss;
  offer.wscale = wscale;
  offer.sackPermitted = sack;
  offer.tsPresent = o.tsPresent;
  offer.tsVal = o.tsVal;
  offer.fromCookie = true;
  offer.cookieIss = seqAdd(ack.ack, -1);
  offer.issOverride = -1;
}

/**
 * The ISS fixed in advance for the offer's connection: the cookie (RFC 4987), or the one past a
 * replaced TIME-WAIT record (RFC 6191); -1 when a fresh ISN applies (RFC 6528).
 */
export function fixedIss(offer: SynOffer): number {
  return offer.fromCookie ? offer.cookieIss : offer.issOverride >= 0 ? offer.issOverride : -1;
}

/** Fill `into` with the SYN the offer was taken from, to replay into the new connection. */
export function replaySyn(offer: SynOffer, into: Segment): void {
  into.clear();
  into.seq = offer.clientIsn;
  into.flags = TcpFlag.SYN;
  into.window = offer.window;
  const o = into.options;
  o.mss = offer.mss;
  o.wscale = offer.wscale;
  o.sackPermitted = offer.sackPermitted;
  o.tsPresent = offer.tsPresent;
  o.tsVal = offer.tsVal;
}

/**
 * Fill `into` with the app's final ACK of a cookie handshake (our ISS `iss`), to replay after the
 * SYN: the app already completed the handshake against the cookie. TSecr is 0: the cookie's
 * TSval carried options, not a time.
 */
export function replayCookieAck(offer: SynOffer, iss: number, into: Segment): void {
  into.clear();
  into.seq = seqAdd(offer.clientIsn, 1);
  into.ack = seqAdd(iss, 1);
  into.flags = TcpFlag.ACK;
  into.window = offer.window;
  if (offer.tsPresent) {
    into.options.tsPresent = true;
    into.options.tsVal = offer.tsVal;
    into.options.tsEcr = 0;
  }
}

/**
 * Fill `out` with the RST that refuses the offer (RFC 9293 §3.10.7.1 shape): RST|ACK acknowledging
 * the SYN, so the app sees ECONNREFUSED; after a cookie the app believes it is connected, so the
 * RST resets the connection it thinks it has (SEQ = cookie + 1).
 */
export function refusalRst(offer: SynOffer, out: OutSegment): void {
  out.clear();
  out.seq = offer.fromCookie ? seqAdd(offer.cookieIss, 1) : 0;
  out.ack = seqAdd(offer.clientIsn, 1);
  out.flags = TcpFlag.RST | TcpFlag.ACK;
}

/**
 * Whether an RST ends a pending offer (the app gave up before the forwarder decided): only one at
 * the SYN's sequence number or just past it, in the spirit of RFC 5961 §3 (a stray RST is dropped).
 */
export function rstAbortsOffer(offer: SynOffer, rst: Segment): boolean {
  return rst.seq === seqAdd(offer.clientIsn, 1) || rst.seq === offer.clientIsn;
}
