import { describe, expect, it } from 'vitest';
import { peerMssOrDefault } from '../../src/tcp/defaults.js';
import { IsnGenerator } from '../../src/tcp/isn.js';
import {
  cookieMss,
  cookieSynAck,
  fixedIss,
  listenVerdict,
  mayBeCookieAck,
  offerFromCookieAck,
  opensConnection,
  offerFromSyn,

  refusalRst,
  replayCookieAck,
  replaySyn,
  rstAbortsOffer,
  type SynOffer,
} from '../../src/tcp/listener.js';
import { seqAdd, seqLeq } from '../../src/tcp/seq.js';
import { SynCookies } from '../../src/tcp/syncookie.js';
import { TimeWaitRecord, tsClock } from '../../src/tcp/time-wait.js';
import { FlowKey } from '../../src/wire/packet.js';
import { OutSegment, Segment } from '../../src/wire/segment.js';
import { ACK, FIN, RST, SYN, seg, testConfig } from './helpers.js';

const SECRET = Uint8Array.from({ length: 16 }, (_, i) => 0x30 + i);
const NOW = 1_000_000;
const CLIENT_ISN = 0xfffffff0; // the SYN-ACK's ACK crosses the wrap

function key(family: 4 | 6 = 4): FlowKey {
  const k = new FlowKey();
  k.family = family;
  k.src.set(family === 4 ? [0, 0, 0, 0x0a000002] : [0x20010db8, 0, 0, 2]); // the app
  k.dst.set(family === 4 ? [0, 0, 0, 0xc6120001] : [0x20010db8, 0, 0, 1]); // what it dialled
  k.srcPort = 51000;
  k.dstPort = 443;
  return k;
}

function offer(): SynOffer {
  return {
    clientIsn: 0,
    window: 0,
    mss: 0,
    wscale: -1,
    sackPermitted: false,
    tsPresent: false,
    tsVal: 0,
    fromCookie: false,
    cookieIss: 0,
    issOverride: -1,
  };
}

/** The app's final ACK for a cookie SYN-ACK `synAck`, echoing its TSval when it has one. */
function finalAck(synAck: OutSegment, tsVal = 0): Segment {
  const o = synAck.options;
  return seg({ seq: seqAdd(CLIENT_ISN, 1), ack: seqAdd(synAck.seq, 1), flags: ACK, window: 1234, ts: o.tsPresent ? [tsVal, o.tsVal] : undefined });
}

const cookies = new SynCookies(SECRET);
const isn = new IsnGenerator(SECRET);

describe('listenVerdict / opensConnection / mayBeCookieAck (the listener admission)', () => {
  it('refuses our own looping dial before any limit, then the connection limit, then memory pressure', () => {
    expect(listenVerdict(true, 100, 10, false, 100, 1)).toBe('loop');
    expect(listenVerdict(false, 10, 10, false, 100, 1)).toBe('conn_limit');
    expect(listenVerdict(false, 9, 10, false, 100, 1)).toBe('memory_limit');
  });

  it('answers with a SYN cookie once the half-open connections reach the SYN backlog (RFC 4987 §3.6)', () => {
    expect(listenVerdict(false, 0, Infinity, true, 16, 16)).toBe('cookie');
    expect(listenVerdict(false, 0, Infinity, true, 15, 16)).toBe('pending');
  });

  it('takes only a SYN alone as opening a connection', () => {
    expect(opensConnection(SYN)).toBe(true);
    expect(opensConnection(SYN | ACK)).toBe(false);
    expect(opensConnection(SYN | FIN)).toBe(false);
    expect(opensConnection(ACK)).toBe(false);
  });

  it('checks a bare ACK as a cookie only while a cookie SYN-ACK may still be valid', () => {
    expect(mayBeCookieAck(ACK, 1000, -Infinity, 128_000)).toBe(false);
    expect(mayBeCookieAck(ACK, 1000, 0, 1001)).toBe(true);
    expect(mayBeCookieAck(ACK, 1001, 0, 1001)).toBe(false);
    expect(mayBeCookieAck(ACK | FIN, 1000, 0, 1001)).toBe(false);
  });
});

describe('cookieSynAck (RFC 4987 §3.6: the stateless SYN-ACK)', () => {
  it('acknowledges the SYN with a cookie ISS that carries the peer MSS rounded down (RFC 4987 §3.6)', () => {
    const cfg = testConfig({ rcvBufBytes: 1 << 20 });
    const out = new OutSegment();
    const iss = cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, mss: 1400 }), key(), NOW, cfg, cookies, isn);
    expect(out.seq).toBe(iss);
    expect(out.ack).toBe(seqAdd(CLIENT_ISN, 1));
    expect(out.flags).toBe(SYN | ACK);
    expect(out.window).toBe(65535);
    expect(out.options.mss).toBe(cfg.mss);
    expect(cookieMss(finalAck(out), key(), NOW, cookies)).toBe(1300);
  });

  it('assumes 536 (IPv4) / 1220 (IPv6) for a SYN without an MSS option (RFC 9293 §3.7.1)', () => {
    const cfg = testConfig();
    for (const [family, mss] of [[4, 536], [6, 1220]] as const) {
      const out = new OutSegment();
      cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN }), key(family), NOW, cfg, cookies, isn);
      expect(cookieMss(finalAck(out), key(family), NOW, cookies)).toBe(mss);
    }
    expect(peerMssOrDefault(1460, 6)).toBe(1460);
  });

  it('offers no window scale and no SACK without timestamps: nothing carries them back (RFC 4987 §3.6)', () => {
    const cfg = testConfig({ timestamps: true, sack: true });
    const out = new OutSegment();
    cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, mss: 1460, wscale: 7, sackPermitted: true }), key(), NOW, cfg, cookies, isn);
    expect(out.options.tsPresent).toBe(false);
    expect(out.options.wscale).toBe(-1);
    expect(out.options.sackPermitted).toBe(false);
  });

  it('offers nothing in TSval when timestamps are off on our side, whatever the SYN offers', () => {
    const cfg = testConfig({ timestamps: false, sack: true });
    const out = new OutSegment();
    cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, wscale: 7, sackPermitted: true, ts: [77, 0] }), key(), NOW, cfg, cookies, isn);
    expect(out.options.tsPresent).toBe(false);
    expect(out.options.wscale).toBe(-1);
    expect(out.options.sackPermitted).toBe(false);
  });

  it('with timestamps on both, carries the PEER shift and SACK in our TSval on the connection clock (RFC 7323 §2.3, §5.4)', () => {
    const cfg = testConfig({ timestamps: true, sack: true, rcvBufBytes: 1 << 20 });
    const k = key();
    const out = new OutSegment();
    cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, mss: 1460, wscale: 3, sackPermitted: true, ts: [77, 0] }), k, NOW, cfg, cookies, isn);
    expect(out.options.tsPresent).toBe(true);
    expect(out.options.tsEcr).toBe(77);
    expect(out.options.wscale).toBe(cfg.wscale); // ours is advertised, the peer's rides in TSval
    expect(out.options.sackPermitted).toBe(true);
    const clock = tsClock(NOW, isn.tsOffset(4, k.dst, k.dstPort, k.src, k.srcPort));
    expect(seqLeq(out.options.tsVal, clock)).toBe(true);
    expect(seqLeq(seqAdd(clock, -64), out.options.tsVal)).toBe(true);

    const o = offer();
    const ack = finalAck(out, 78);
    offerFromCookieAck(o, ack, cookieMss(ack, k, NOW, cookies), cookies);
    expect(o).toMatchObject({ mss: 1460, wscale: 3, sackPermitted: true, tsPresent: true, tsVal: 78, fromCookie: true });
  });

  it('answers a SYN without window scale with none, and SACK only when we allow it too', () => {
    const cfg = testConfig({ timestamps: true, sack: false });
    const out = new OutSegment();
    cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, sackPermitted: true, ts: [77, 0] }), key(), NOW, cfg, cookies, isn);
    expect(out.options.wscale).toBe(-1);
    expect(out.options.sackPermitted).toBe(false);
    const o = offer();
    const ack = finalAck(out, 78);
    offerFromCookieAck(o, ack, 536, cookies);
    expect(o.wscale).toBe(-1);
    expect(o.sackPermitted).toBe(false);
  });
});

describe('cookieMss / offerFromCookieAck (RFC 4987 §3.6: the ACK that brings a cookie back)', () => {
  const cfg = testConfig();
  const out = new OutSegment();
  cookieSynAck(out, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, mss: 1460 }), key(), NOW, cfg, cookies, isn);

  it('rejects a cookie for another 4-tuple, another client ISN or after it aged out', () => {
    const other = key();
    other.srcPort++;
    expect(cookieMss(finalAck(out), other, NOW, cookies)).toBe(-1);
    const ack = finalAck(out);
    ack.seq = seqAdd(ack.seq, 1);
    expect(cookieMss(ack, key(), NOW, cookies)).toBe(-1);
    expect(cookieMss(finalAck(out), key(), NOW + 10 * cookies.tickMs, cookies)).toBe(-1);
  });

  it('rebuilds the offer from the ACK: the client ISN is SEQ − 1 and our ISS the cookie (ACK − 1)', () => {
    const o = offer();
    o.issOverride = 99; // a reused offer forgets what it held
    const ack = finalAck(out);
    offerFromCookieAck(o, ack, cookieMss(ack, key(), NOW, cookies), cookies);
    expect(o).toEqual({
      clientIsn: CLIENT_ISN,
      window: 1234,
      mss: 1460,
      wscale: -1,
      sackPermitted: false,
      tsPresent: false,
      tsVal: 0,
      fromCookie: true,
      cookieIss: out.seq,
      issOverride: -1,
    });
  });

  it('ignores a TSecr that is not one of our cookie TSvals: no window scale, no SACK', () => {
    const o = offer();
    offerFromCookieAck(o, seg({ seq: 1, ack: 2, ts: [5, 0x40] }), 536, cookies);
    expect(o.wscale).toBe(-1);
    expect(o.sackPermitted).toBe(false);
    expect(o.tsPresent).toBe(true);
  });
});

describe('the deferred handshake: the offer replayed into the new connection', () => {
  it('replays the SYN exactly as it arrived (its options and window)', () => {
    const o = offer();
    offerFromSyn(o, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN, window: 29200, mss: 1440, wscale: 7, sackPermitted: true, ts: [555, 0] }), null);
    const syn = seg({ seq: 1, ack: 5, flags: ACK, payload: 'stale' }); // a reused segment is cleared
    replaySyn(o, syn);
    expect(syn.seq).toBe(CLIENT_ISN);
    expect(syn.flags).toBe(SYN);
    expect(syn.window).toBe(29200);
    expect(syn.payload.length).toBe(0);
    expect(syn.options).toMatchObject({ mss: 1440, wscale: 7, sackPermitted: true, tsPresent: true, tsVal: 555 });
  });

  it('replays the app final ACK after a cookie: SEQ = client ISN + 1, ACK = ISS + 1, TSecr 0', () => {
    const o = offer();
    offerFromCookieAck(o, seg({ seq: seqAdd(CLIENT_ISN, 1), ack: 0x1000, window: 800, ts: [42, 0x40] }), 1460, cookies);
    const ack = new Segment();
    replayCookieAck(o, 0xfff, ack);
    expect(ack.seq).toBe(seqAdd(CLIENT_ISN, 1));
    expect(ack.ack).toBe(0x1000);
    expect(ack.flags).toBe(ACK);
    expect(ack.window).toBe(800);
    expect(ack.options).toMatchObject({ tsPresent: true, tsVal: 42, tsEcr: 0 });
  });

  it('fixes the ISS to the cookie, else to the one past a replaced TIME-WAIT record (RFC 6191), else none', () => {
    const o = offer();
    offerFromSyn(o, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN }), null);
    expect(fixedIss(o)).toBe(-1);
    // The old incarnation's SND.NXT was just below the wrap: the new ISS is 64 KiB + 2 past it.
    offerFromSyn(o, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN }), new TimeWaitRecord({ id: 1, sndNxt: 0xfffffff0, rcvNxt: 5, window: 1000, tsEnabled: false, tsRecent: 0, tsRecentAt: 0, tsOffset: 0, enteredAt: 0, expiresAt: 60_000 }));
    expect(fixedIss(o)).toBe(0xfff1);
    offerFromCookieAck(o, seg({ seq: 1, ack: 0x5000 }), 536, cookies);
    expect(fixedIss(o)).toBe(0x4fff);
  });
});

describe('refusing or aborting an offer', () => {
  it('refuses a SYN with RST|ACK acknowledging it, so the app sees ECONNREFUSED (RFC 9293 §3.10.7.1)', () => {
    const o = offer();
    offerFromSyn(o, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN }), null);
    const out = new OutSegment();
    refusalRst(o, out);
    expect([out.seq, out.ack, out.flags]).toEqual([0, seqAdd(CLIENT_ISN, 1), RST | ACK]);
  });

  it('refuses a cookie connection in the window the app believes open (SEQ = cookie + 1)', () => {
    const o = offer();
    offerFromCookieAck(o, seg({ seq: seqAdd(CLIENT_ISN, 1), ack: 0x2000 }), 536, cookies);
    const out = new OutSegment();
    refusalRst(o, out);
    expect([out.seq, out.ack, out.flags]).toEqual([0x2000, seqAdd(CLIENT_ISN, 1), RST | ACK]);
  });

  it('lets only an RST at the SYN or just past it abort a pending offer (RFC 5961 §3)', () => {
    const o = offer();
    offerFromSyn(o, seg({ seq: CLIENT_ISN, ack: 0, flags: SYN }), null);
    expect(rstAbortsOffer(o, seg({ seq: CLIENT_ISN, flags: RST }))).toBe(true);
    expect(rstAbortsOffer(o, seg({ seq: seqAdd(CLIENT_ISN, 1), flags: RST }))).toBe(true);
    expect(rstAbortsOffer(o, seg({ seq: seqAdd(CLIENT_ISN, 2), flags: RST }))).toBe(false);
    expect(rstAbortsOffer(o, seg({ seq: seqAdd(CLIENT_ISN, -1), flags: RST }))).toBe(false);
  });
});
