"""Helpers shared by the raw-packet test tools (attack.py, holes.py): JSON lines out, the
Internet checksum (RFC 1071)."""
import json
import struct
import sys


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    return ~fold(sum(struct.unpack("!%dH" % (len(data) // 2), data))) & 0xFFFF
