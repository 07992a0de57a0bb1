import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CidrSet, DestinationPolicy, cidrSet, parseMapRule, splitHostPort } from '../../src/proxy/policy.js';
import { formatAddress, parseAddress } from '../../src/wire/address.js';

/** The host and port of a target (its address, when it is one, is checked apart). */
function hostPort(t: { host: string; port: number } | null): { host: string; port: number } | null {
  return t === null ? null : { host: t.host, port: t.port };
}

describe('DestinationPolicy', () => {
  it('gives the target\'s address as numbers when it is one, null for a host name', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.1=upstream.internal:8080', '198.18.0.2=[2001:db8::7]:443'] });
    const direct = parseAddress('203.0.113.9')!;
    expect(p.resolveAddress(direct.family, direct.words, '203.0.113.9', 80)?.address).toEqual({ family: 4, words: direct.words });
    expect(p.resolve('198.18.0.1', 80)?.address).toBeNull();
    expect(p.resolve('198.18.0.2', 80)?.address).toEqual({ family: 6, words: Uint32Array.of(0x20010db8, 0, 0, 7) });
  });

  it('gives the same destination as the last the same target, and another address, port or rewrite a new one', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.1=upstream.internal:8080'], deny: ['203.0.113.66/32'] });
    const a = parseAddress('203.0.113.9')!;
    const b = parseAddress('203.0.113.10')!;
    const first = p.resolveAddress(a.family, a.words, '203.0.113.9', 80);
    // A SYN's words are the interned array of its address: the same array, the same target.
    expect(p.resolveAddress(a.family, a.words, '203.0.113.9', 80)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    const otherPort = p.resolveAddress(a.family, a.words, '203.0.113.9', 81);
    expect(otherPort).not.toBe(first);
    expect(hostPort(otherPort)).toEqual({ host: '203.0.113.9', port: 81 });
    const otherAddress = p.resolveAddress(b.family, b.words, '203.0.113.10', 81);
    expect(otherAddress?.address).toEqual({ family: 4, words: b.words });
    const mapped = parseAddress('198.18.0.1')!;
    expect(hostPort(p.resolveAddress(mapped.family, mapped.words, '198.18.0.1', 81))).toEqual({ host: 'upstream.internal', port: 8080 });
    expect(p.resolveAddress(mapped.family, mapped.words, '198.18.0.1', 81)?.address).toBeNull();
    // A denied destination is refused whatever came before it.
    const denied = parseAddress('203.0.113.66')!;
    expect(p.resolveAddress(denied.family, denied.words, '203.0.113.66', 81)).toBeNull();
    expect(p.resolveAddress(denied.family, denied.words, '203.0.113.66', 81)).toBeNull();
  });

  it('passes destinations through unchanged by default', () => {
    expect(hostPort(new DestinationPolicy({}).resolve('198.18.0.5', 80))).toEqual({ host: '198.18.0.5', port: 80 });
  });

  it('denies a denied address (the cloud metadata address)', () => {
    const p = new DestinationPolicy({ deny: ['169.254.169.254/32'] });
    expect(p.resolve('169.254.169.254', 80)).toBeNull();
    expect(hostPort(p.resolve('169.254.169.253', 80))).toEqual({ host: '169.254.169.253', port: 80 });
  });

  it('deny wins over allow', () => {
    const p = new DestinationPolicy({ allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] });
    expect(p.resolve('10.2.3.4', 1)).not.toBeNull();
    expect(p.resolve('10.1.3.4', 1)).toBeNull();
    expect(p.resolve('192.0.2.1', 1)).toBeNull();
  });

  it('applies IPv6 CIDRs', () => {
    const p = new DestinationPolicy({ deny: ['fd00::/8'] });
    expect(p.resolve('fd12::1', 443)).toBeNull();
    expect(p.resolve('2001:db8::1', 443)).not.toBeNull();
  });

  it('maps an address and port, and checks policy on the mapped target', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.10:80=127.0.0.1:8080'], deny: ['127.0.0.2'] });
    expect(hostPort(p.resolve('198.18.0.10', 80))).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(hostPort(p.resolve('198.18.0.10', 81))).toEqual({ host: '198.18.0.10', port: 81 });
    const q = new DestinationPolicy({ map: ['198.18.0.0/15=127.0.0.2'], deny: ['127.0.0.2'] });
    expect(q.resolve('198.18.4.4', 22)).toBeNull();
  });

  it('maps a network keeping the port', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.0/15=127.0.0.1'] });
    expect(hostPort(p.resolve('198.19.1.1', 4242))).toEqual({ host: '127.0.0.1', port: 4242 });
  });

  it('rejects bad CIDRs with a message naming the option', () => {
    expect(() => new DestinationPolicy({ deny: ['10.0.0.0/33'] })).toThrow(/--deny: "10.0.0.0\/33" has a bad prefix length/);
    expect(() => new DestinationPolicy({ allow: ['nonsense'] })).toThrow(/--allow: "nonsense" is not an IP address/);
    expect(() => parseMapRule('1.2.3.4')).toThrow(/--map: "1.2.3.4" must look like FROM=TO/);
    expect(() => parseMapRule('1.2.3.4:99999=5.6.7.8')).toThrow(/bad port "99999"/);
  });

  it('matches IPv4 rules against IPv4-mapped IPv6 destinations and the reverse, as net.BlockList does', () => {
    const p = new DestinationPolicy({ deny: ['10.0.0.0/8', '::ffff:192.0.2.0/120'] });
    expect(p.resolve('::ffff:10.1.2.3', 80)).toBeNull();
    expect(p.resolve('192.0.2.77', 80)).toBeNull();
    expect(p.resolve('::ffff:192.0.2.77', 80)).toBeNull();
    expect(p.resolve('11.0.0.1', 80)).not.toBeNull();
    // 0.0.0.0/0 covers IPv4 only; ::/0 covers everything, IPv4 included.
    expect(new DestinationPolicy({ deny: ['0.0.0.0/0'] }).resolve('2001:db8::1', 1)).not.toBeNull();
    expect(new DestinationPolicy({ deny: ['::/0'] }).resolve('198.18.0.1', 1)).toBeNull();
  });

  it('resolveAddress on the SYN\'s numbers answers as resolve on the text', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.0/15=10.9.9.9:99'], deny: ['10.9.9.9'], allow: ['0.0.0.0/0'] });
    const a = parseAddress('198.19.3.4')!;
    expect(p.resolveAddress(a.family, a.words, '198.19.3.4', 80)).toBeNull();
    const b = parseAddress('203.0.113.9')!;
    expect(hostPort(p.resolveAddress(b.family, b.words, '203.0.113.9', 443))).toEqual({ host: '203.0.113.9', port: 443 });
    const q = new DestinationPolicy({ map: ['198.18.0.1=upstream.internal:8080'], deny: ['0.0.0.0/0'] });
    // A host name target is not an address: allow/deny do not apply to it.
    expect(hostPort(q.resolve('198.18.0.1', 80))).toEqual({ host: 'upstream.internal', port: 8080 });
  });

  it('CidrSet agrees with net.BlockList on random networks and addresses (IPv4, IPv6, mapped)', () => {
    const v4 = fc.tuple(fc.constant(4 as const), fc.integer({ min: 0, max: 0xffffffff }).map((w) => Uint32Array.of(0, 0, 0, w)));
    const mapped = fc.integer({ min: 0, max: 0xffffffff }).map((w) => [6 as const, Uint32Array.of(0, 0, 0xffff, w)] as const);
    const v6 = fc.tuple(fc.constant(6 as const), fc.uint32Array({ minLength: 4, maxLength: 4 }));
    const addr = fc.oneof(v4, mapped, v6);
    const rule = fc.tuple(addr, fc.integer({ min: 0, max: 128 }));
    // Addresses near the rules' own (a few low bits flipped) as well as anywhere.
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 4 }), addr, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 31 }), (rules, far, pick, flip) => {
        const ours = new CidrSet();
        const node = new net.BlockList();
        for (const [[family, words], len] of rules) {
          const prefix = family === 4 ? len % 33 : len;
          ours.add(family, words, prefix);
          node.addSubnet(formatAddress(family, words), prefix, family === 4 ? 'ipv4' : 'ipv6');
        }
        const [[nf, nw]] = rules[pick % rules.length]!;
        const near = Uint32Array.from(nw);
        near[3] = (near[3]! ^ (1 << flip)) >>> 0;
        for (const [family, words] of [far, [nf, near] as const, [nf, nw] as const]) {
          const text = formatAddress(family, words);
          expect(ours.has(family, words), `${text} in ${rules.map(([[f, w], l]) => `${formatAddress(f, w)}/${l}`).join(' ')}`).toBe(node.check(text, family === 4 ? 'ipv4' : 'ipv6'));
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });

  it('cidrSet names the option in its errors and takes single addresses as full-length networks', () => {
    expect(() => cidrSet(['fe80::1%eth0'], '--deny')).toThrow(/--deny: "fe80::1%eth0" is not an IP address/);
    const s = cidrSet(['192.0.2.1', '2001:db8::1'], '--deny');
    expect(s.has(4, Uint32Array.of(0, 0, 0, 0xc0000201))).toBe(true);
    expect(s.has(4, Uint32Array.of(0, 0, 0, 0xc0000202))).toBe(false);
    expect(s.has(6, Uint32Array.of(0x20010db8, 0, 0, 1))).toBe(true);
    expect(s.has(6, Uint32Array.of(0x20010db8, 0, 0, 2))).toBe(false);
  });

  it('splits host and port forms', () => {
    expect(splitHostPort('1.2.3.4:80', 'x')).toEqual({ host: '1.2.3.4', port: 80 });
    expect(splitHostPort('[2001:db8::1]:443', 'x')).toEqual({ host: '2001:db8::1', port: 443 });
    expect(splitHostPort('2001:db8::1', 'x')).toEqual({ host: '2001:db8::1', port: -1 });
    expect(splitHostPort('10.0.0.0/8', 'x')).toEqual({ host: '10.0.0.0/8', port: -1 });
  });
});
