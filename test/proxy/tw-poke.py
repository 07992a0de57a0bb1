#!/usr/bin/env python3
"""Make the kernel of a peer send its own, socketless packets: run in the server's namespace.

    tw-poke.py SRC SPORT DST DPORT

DST:DPORT is a TCP socket in TIME-WAIT whose peer is SRC:SPORT (synfin's upstream socket, after
it closed first). Three segments from SRC:SPORT, each answered by DST's kernel alone:
  1. an ACK with a sequence number outside the window: the TIME-WAIT socket answers with an ACK
     (RFC 9293 §3.10.7.4, Linux tcp_timewait_state_process: TCP_TW_ACK);
  2. a RST at RCV.NXT (taken from that ACK): the TIME-WAIT socket is gone (tcp_rfc1337=0);
  3. a data segment: no socket any more, so DST answers with a RST (tcp_v4_send_reset).
Prints one line per reply seen from DST:DPORT ("ack SEQ ACK", "rst SEQ"), "timeout WHAT" when a
reply does not come within 3 s. Exit 0 when both came.
"""
import socket
import struct
import sys
import time

SRC, SPORT, DST, DPORT = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def segment(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    hdr = struct.pack("!HHIIBBHHH", SPORT, DPORT, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(SRC) + socket.inet_aton(DST) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
sock.bind((SRC, 0))
sock.settimeout(0.2)


def wait_reply(want: int, what: str):
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            pkt, (addr, _) = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if addr != DST:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        sport, dport, seq, ack, _off, flags = struct.unpack("!HHIIBB", pkt[ihl : ihl + 14])
        if sport == DPORT and dport == SPORT and flags & want:
            return seq, ack, flags
    print(f"timeout {what}", flush=True)
    return None


ok = True
sock.sendto(segment(0x12345678, 0, ACK), (DST, 0))
r = wait_reply(ACK, "ack")
if r is None:
    sys.exit(1)
tw_seq, tw_ack, _ = r
print(f"ack {tw_seq} {tw_ack}", flush=True)
sock.sendto(segment(tw_ack, 0, RST), (DST, 0))
time.sleep(0.3)
sock.sendto(segment(tw_ack, tw_seq, PSH | ACK, b"late"), (DST, 0))
r = wait_reply(RST, "rst")
if r is None:
    sys.exit(1)
print(f"rst {r[0]}", flush=True)
