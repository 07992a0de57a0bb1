import { describe, expect, it } from 'vitest';
import { DestinationPolicy, parseMapRule, splitHostPort } from '../../src/proxy/policy.js';

describe('DestinationPolicy', () => {
  it('passes destinations through unchanged by default', () => {
    expect(new DestinationPolicy({}).resolve('198.18.0.5', 80)).toEqual({ host: '198.18.0.5', port: 80 });
  });

  it('denies a denied address (the cloud metadata address)', () => {
    const p = new DestinationPolicy({ deny: ['169.254.169.254/32'] });
    expect(p.resolve('169.254.169.254', 80)).toBeNull();
    expect(p.resolve('169.254.169.253', 80)).toEqual({ host: '169.254.169.253', port: 80 });
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
    expect(p.resolve('198.18.0.10', 80)).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(p.resolve('198.18.0.10', 81)).toEqual({ host: '198.18.0.10', port: 81 });
    const q = new DestinationPolicy({ map: ['198.18.0.0/15=127.0.0.2'], deny: ['127.0.0.2'] });
    expect(q.resolve('198.18.4.4', 22)).toBeNull();
  });

  it('maps a network keeping the port', () => {
    const p = new DestinationPolicy({ map: ['198.18.0.0/15=127.0.0.1'] });
    expect(p.resolve('198.19.1.1', 4242)).toEqual({ host: '127.0.0.1', port: 4242 });
  });

  it('rejects bad CIDRs with a message naming the option', () => {
    expect(() => new DestinationPolicy({ deny: ['10.0.0.0/33'] })).toThrow(/--deny: "10.0.0.0\/33" has a bad prefix length/);
    expect(() => new DestinationPolicy({ allow: ['nonsense'] })).toThrow(/--allow: "nonsense" is not an IP address/);
    expect(() => parseMapRule('1.2.3.4')).toThrow(/--map: "1.2.3.4" must look like FROM=TO/);
    expect(() => parseMapRule('1.2.3.4:99999=5.6.7.8')).toThrow(/bad port "99999"/);
  });

  it('splits host and port forms', () => {
    expect(splitHostPort('1.2.3.4:80', 'x')).toEqual({ host: '1.2.3.4', port: 80 });
    expect(splitHostPort('[2001:db8::1]:443', 'x')).toEqual({ host: '2001:db8::1', port: 443 });
    expect(splitHostPort('2001:db8::1', 'x')).toEqual({ host: '2001:db8::1', port: -1 });
    expect(splitHostPort('10.0.0.0/8', 'x')).toEqual({ host: '10.0.0.0/8', port: -1 });
  });
});
