/**
 * Golden packets, built byte by byte from the RFC layouts by an independent script (Python:
 * struct.pack per field, the RFC 1071 checksum as a plain 16-bit sum). Each is a complete IP packet.
 */

/** Linux-style SYN 198.18.0.1:54321 → 198.19.255.10:443, ISN 0xf0e1d2c3, ID 0x1c46, DF, TTL 64, window 64240; options MSS 1460, SACK-Permitted, TS 0x0012d687/0, NOP, WS 7. */
export const SYN_V4 = [
  '45 00 00 3c 1c 46 40 00 40 06 93 44 c6 12 00 01 c6 13 ff 0a',
  'd4 31 01 bb f0 e1 d2 c3 00 00 00 00 a0 02 fa f0 51 b1 00 00',
  '02 04 05 b4 04 02 08 0a 00 12 d6 87 00 00 00 00 01 03 03 07',
].join(' ');

/** ACK|PSH with NOP,NOP,TS (0x0012d6a0/0x9a8b7c6d), seq 0xf0e1d2c4 ack 0x11223345, window 502, payload "hello" (odd length), ID 0x1c47. */
export const DATA_V4 = [
  '45 00 00 39 1c 47 40 00 40 06 93 46 c6 12 00 01 c6 13 ff 0a',
  'd4 31 01 bb f0 e1 d2 c4 11 22 33 45 80 18 01 f6 da 0f 00 00',
  '01 01 08 0a 00 12 d6 a0 9a 8b 7c 6d 68 65 6c 6c 6f',
].join(' ');

/** IPv6 SYN-ACK 2001:db8::2:443 → 2001:db8::1:54321, seq 0x11223344 ack 0xf0e1d2c4, window 65160; MSS 1440, SACK-Permitted, TS 0x7f000001/0x0012d687, NOP, WS 7. */
export const SYNACK_V6 = [
  '60 00 00 00 00 28 06 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01',
  '01 bb d4 31 11 22 33 44 f0 e1 d2 c4 a0 12 fe 88 ba 71 00 00',
  '02 04 05 a0 04 02 08 0a 7f 00 00 01 00 12 d6 87 01 03 03 07',
].join(' ');

/** ACK 10.0.0.1:80 → 10.0.0.2:12345 seq 1000 ack 2000 window 1024, ID 7; NOP,NOP,TS 100/200, NOP,NOP,SACK [0x1000,0x2000) [0x3000,0x4000). */
export const SACK_V4 = [
  '45 00 00 48 00 07 40 00 40 06 26 a7 0a 00 00 01 0a 00 00 02',
  '00 50 30 39 00 00 03 e8 00 00 07 d0 d0 10 04 00 2b 26 00 00',
  '01 01 08 0a 00 00 00 64 00 00 00 c8 01 01 05 12 00 00 10 00',
  '00 00 20 00 00 00 30 00 00 00 40 00',
].join(' ');

/** IPv6 with Hop-by-Hop (8 octets, PadN) and Destination Options (16 octets, PadN) before TCP 1111 → 2222 seq 5 ack 6 ACK|PSH window 100, payload "abcd". */
export const EXT_V6 = [
  '60 00 00 00 00 30 00 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 01 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02',
  '3c 00 01 04 00 00 00 00 06 01 01 0c 00 00 00 00 00 00 00 00',
  '00 00 00 00 04 57 08 ae 00 00 00 05 00 00 00 06 50 18 00 64',
  '82 19 00 00 61 62 63 64',
].join(' ');

/** RST|ACK 198.19.255.10:443 → 198.18.0.1:54321, seq 0, ack 0xf0e1d2c4, ID 0x0100. */
export const RST_V4 = [
  '45 00 00 28 01 00 40 00 40 06 ae 9e c6 13 ff 0a c6 12 00 01',
  '01 bb d4 31 00 00 00 00 f0 e1 d2 c4 50 14 00 00 8b 0b 00 00',
].join(' ');

/** Bare RST 2001:db8::2:443 → 2001:db8::1:54321, seq 0x01020304. */
export const RST_V6 = [
  '60 00 00 00 00 14 06 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01',
  '01 bb d4 31 01 02 03 04 00 00 00 00 50 04 00 00 7a 79 00 00',
].join(' ');

/** ICMPv4 echo request 198.18.0.1 → 198.19.255.10, id 0x1234 seq 1, data "pingdata", ID 0x2000, no DF. */
export const ECHO_REQ_V4 = [
  '45 00 00 24 20 00 00 00 40 01 cf a7 c6 12 00 01 c6 13 ff 0a',
  '08 00 2e 37 12 34 00 01 70 69 6e 67 64 61 74 61',
].join(' ');

/** ICMPv4 echo reply to ECHO_REQ_V4, ID 0x0200, no DF. */
export const ECHO_REP_V4 = [
  '45 00 00 24 02 00 00 00 40 01 ed a7 c6 13 ff 0a c6 12 00 01',
  '00 00 36 37 12 34 00 01 70 69 6e 67 64 61 74 61',
].join(' ');

/** ICMPv6 echo reply 2001:db8::2 → 2001:db8::1, id 0x1234 seq 1, data "pingdata". */
export const ECHO_REP_V6 = [
  '60 00 00 00 00 10 3a 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01',
  '81 00 59 77 12 34 00 01 70 69 6e 67 64 61 74 61',
].join(' ');

/** ICMPv4 port unreachable (3/3) 198.19.255.10 → 198.18.0.1 quoting all of SYN_V4, ID 0x0300, no DF. */
export const UNREACH_V4 = [
  '45 00 00 58 03 00 00 00 40 01 ec 73 c6 13 ff 0a c6 12 00 01',
  '03 03 88 5d 00 00 00 00 45 00 00 3c 1c 46 40 00 40 06 93 44',
  'c6 12 00 01 c6 13 ff 0a d4 31 01 bb f0 e1 d2 c3 00 00 00 00',
  'a0 02 fa f0 51 b1 00 00 02 04 05 b4 04 02 08 0a 00 12 d6 87',
  '00 00 00 00 01 03 03 07',
].join(' ');

/** ICMPv6 port unreachable (1/4) 2001:db8::2 → 2001:db8::1 quoting all of EXT_V6. */
export const UNREACH_V6 = [
  '60 00 00 00 00 60 3a 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01',
  '01 04 fe 88 00 00 00 00 60 00 00 00 00 30 00 40 20 01 0d b8',
  '00 00 00 00 00 00 00 00 00 00 00 01 20 01 0d b8 00 00 00 00',
  '00 00 00 00 00 00 00 02 3c 00 01 04 00 00 00 00 06 01 01 0c',
  '00 00 00 00 00 00 00 00 00 00 00 00 04 57 08 ae 00 00 00 05',
  '00 00 00 06 50 18 00 64 82 19 00 00 61 62 63 64',
].join(' ');

/** UDP 198.18.0.1:5353 → 198.18.0.53:53, 6-byte payload, ID 0x0042, DF. */
export const UDP_V4 = [
  '45 00 00 22 00 42 40 00 40 11 ae 2e c6 12 00 01 c6 12 00 35',
  '14 e9 00 35 00 0e 4b 24 12 34 01 00 00 01',
].join(' ');

/** UDP 2001:db8::1:5353 → 2001:db8::35:53, payload "xyz" (odd length). */
export const UDP_V6 = [
  '60 00 00 00 00 0b 11 40 20 01 0d b8 00 00 00 00 00 00 00 00',
  '00 00 00 01 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 35',
  '14 e9 00 35 00 0b 9c 98 78 79 7a',
].join(' ');
