#!/usr/bin/env python3
"""Connections that leave holes, for the memory-limit test and bench/memory.js, run inside the
app's network namespace (`ip netns exec NS python3 holes.py ...`). Raw IPv4 packets through a raw
socket, synfin's SYN-ACKs read through an AF_PACKET socket on its TUN device: the standard library
only. Prints JSON lines on stdout.

  holes IFACE DST DPORT COUNT BYTES
      COUNT handshakes from spoofed sources in 10.0.0.0/8 (nobody in the namespace owns them, so
      the kernel neither answers nor resets synfin's segments), each completed by hand from the
      SYN-ACK seen on IFACE. Then each connection gets BYTES bytes of data starting one byte after
      RCV.NXT: a hole at RCV.NXT that is never filled, so synfin holds BYTES out of order (at most
      what its window offered: the SYN offers window scaling, so up to synfin's 1 MiB buffer). Then
      {"established", "sent", "seconds"}; the process then waits for stdin to close (the
      connections stay as they are: nobody retransmits the missing byte).

  echo HOST PORT BYTES
      A well-behaved kernel client: sends BYTES random bytes while reading them back from an echo
      server, then {"echo": bytes read, "match": bool, "seconds"}. Waits up to 10 minutes.

  never-read HOST PORT COUNT
      COUNT kernel connections that send a line and then never read; {"connected", "errors"}
      once all are tried, then waits for stdin to close.
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time

from rawpkt import checksum, out

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SYN, ACK = 0x02, 0x10
CHUNK = 1400
# Handshakes outstanding at once.
WINDOW = 64


def packet(src, dst, sport, dport, seq, ack, flags, options=b"", payload=b""):
    off = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, 65535, 0, 0) + options + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    # The kernel fills in the IP checksum of IP_HDRINCL packets.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def holes(iface, dst, dport, count, nbytes):
    start = time.monotonic()
    rnd = random.Random(os.getpid())
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sniff.bind((iface, 0))
    sniff.setblocking(False)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    flows = {}
    for i in range(count):
        src = "10.%d.%d.%d" % (rnd.randrange(1, 255), rnd.randrange(0, 255), rnd.randrange(1, 255))
        sport = 1024 + rnd.getrandbits(15)
        isn = rnd.getrandbits(32)
        if (src, sport) in flows:
            continue
        flows[(src, sport)] = isn
    # MSS, and window scaling (shift 7, as Linux offers): synfin's window may then reach its 1 MiB buffer.
    mss = struct.pack("!BBH", 2, 4, 1460) + struct.pack("!BBBB", 1, 3, 3, 7)
    payload = bytes(rnd.getrandbits(8) for _ in range(CHUNK))
    todo = list(flows.items())
    pending = {}
    done = {}
    sent = 0

    def syn(key, isn):
        raw.sendto(packet(key[0], dst, key[1], dport, isn, 0, SYN, mss), (dst, 0))

    def finish(key, isn, iss):
        # The ACK, then data from RCV.NXT + 1 on: the byte at RCV.NXT never comes. Paced, so that
        # the device's queue (500 packets) never overflows.
        src, sport = key
        raw.sendto(packet(src, dst, sport, dport, isn + 1, iss + 1, ACK), (dst, 0))
        n_sent = 0
        off = 1
        while off < 1 + nbytes:
            n = min(CHUNK, 1 + nbytes - off)
            raw.sendto(packet(src, dst, sport, dport, isn + 1 + off, iss + 1, ACK, payload=payload[:n]), (dst, 0))
            n_sent += n
            off += n
            if (off // CHUNK) % 16 == 0:
                time.sleep(0.001)
        return n_sent

    deadline = time.monotonic() + 60 + count / 20
    last_progress = time.monotonic()
    while (todo or pending) and time.monotonic() < deadline and time.monotonic() - last_progress < 8:
        # At most WINDOW handshakes outstanding.
        while todo and len(pending) < WINDOW:
            key, isn = todo.pop()
            pending[key] = (isn, time.monotonic())
            syn(key, isn)
        r, _, _ = select.select([sniff], [], [], 0.1)
        now = time.monotonic()
        for key, (isn, at) in list(pending.items()):
            if now - at > 3:
                # Refused (RST) or lost: another SYN (synfin dials once per SYN it takes).
                pending[key] = (isn, now)
                syn(key, isn)
        if not r:
            continue
        while True:
            try:
                pkt, addr = sniff.recvfrom(70000)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING or len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP:
                continue
            ihl = (pkt[0] & 0xF) * 4
            tcp = pkt[ihl:]
            if tcp[13] & (SYN | ACK) != SYN | ACK:
                continue
            key = (socket.inet_ntoa(pkt[16:20]), struct.unpack("!H", tcp[2:4])[0])
            iss, = struct.unpack("!I", tcp[4:8])
            if key in pending:
                isn = pending.pop(key)[0]
                done[key] = isn
                sent += finish(key, isn, iss)
                last_progress = time.monotonic()
            elif key in done:
                # A retransmitted SYN-ACK: our ACK was lost; again.
                finish(key, done[key], iss)
    established = len(done)
    out({"established": established, "sent": sent, "seconds": round(time.monotonic() - start, 3)})
    sys.stdin.read()


def never_read(host, port, count):
    socks = []
    errors = 0
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"hello\n")
            socks.append(s)
        except OSError:
            errors += 1
    out({"connected": len(socks), "errors": errors})
    sys.stdin.read()


def echo(host, port, nbytes):
    import threading
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(600)
    data = os.urandom(nbytes)
    out({"ready": True})
    sys.stdin.readline()
    t0 = time.monotonic()
    t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    t.start()
    got = bytearray()
    while len(got) < nbytes:
        chunk = s.recv(min(1 << 20, nbytes - len(got)))
        if not chunk:
            break
        got += chunk
    t.join()
    out({"echo": len(got), "match": bytes(got) == data, "seconds": round(time.monotonic() - t0, 2)})
    sys.stdin.read()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "holes":
        holes(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif mode == "echo":
        echo(args[0], int(args[1]), int(args[2]))
    elif mode == "never-read":
        never_read(args[0], int(args[1]), int(args[2]))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
