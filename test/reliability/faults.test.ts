/**
 * Faults on either side of the proxy, with real programs in the app's namespace and real kernel
 * sockets upstream: the destination refuses, never answers (a blackholed address), resets
 * mid-stream or vanishes; the app vanishes without a FIN; --max-connections is reached. After each,
 * the connection table empties within the configured timeouts and this process (synfin runs in
 * it) has no more open file descriptors than before.
 */
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns, NetNs, trackLink, uniqueIfName, ipSync } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { closedPort, closeServer, collectLines, killAndWait, lastJson, listen, PEER, sleep, startEnv, waitFor, type Env } from './env.js';

interface ConnectResult {
  ok: boolean;
  code: string | null;
  bytes: number;
  ms: number;
}

const IDLE_S = 1.5;

describeIfTun('faults: the upstream side', () => {
  let env: Env;
  let echo: Awaited<ReturnType<typeof listen>>;
  let resetter: Awaited<ReturnType<typeof listen>>;
  let refusedPort: number;
  let blackhole: string;
  let upNs: NetNs;
  let vanishAddr: string;
  let hostVeth: string;
  const n = (process.pid % 200) + 20;

  beforeAll(async () => {
    echo = await listen((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
    // Sends 64 KiB, then resets the connection (SO_LINGER 0: an RST, not a FIN).
    resetter = await listen((s) => {
      s.write(Buffer.alloc(64 * 1024, 0x72), () => setTimeout(() => s.resetAndDestroy(), 50));
    });
    refusedPort = await closedPort();
    // A destination host that can vanish: a server in its own namespace behind a veth.
    upNs = NetNs.create('up');
    hostVeth = uniqueIfName('sfv');
    const peerVeth = uniqueIfName('sfv');
    ipSync(['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', peerVeth]);
    trackLink(hostVeth);
    ipSync(['link', 'set', peerVeth, 'netns', upNs.name]);
    ipSync(['addr', 'add', `198.18.${n}.129/30`, 'dev', hostVeth]);
    ipSync(['link', 'set', hostVeth, 'up']);
    vanishAddr = `198.18.${n}.130`;
    upNs.addAddress(peerVeth, `${vanishAddr}/30`);
    upNs.linkUp(peerVeth);
    // A blackholed destination: routed through that namespace, which does not forward: SYNs vanish.
    blackhole = `198.18.${n}.1`;
    ipSync(['route', 'add', `${blackhole}/32`, 'via', vanishAddr, 'dev', hostVeth]);
    upNs.spawn(process.execPath, [
      '-e',
      `require('net').createServer({allowHalfOpen:true},(s)=>{s.write('hello\\n');s.on('data',()=>{});s.on('error',()=>{})}).listen(7000,'${vanishAddr}')`,
    ]);
    env = await startEnv(
      { idleTimeoutSeconds: IDLE_S, connectTimeoutSeconds: 1 },
      { extraMap: (p) => [`${p}3=${blackhole}`, `${p}4=${vanishAddr}`] },
    );
    await waitFor('the vanishing host to listen', () => canConnect(vanishAddr, 7000), (ok) => ok);
    // Warm up (first connection: lazily opened handles), then take the fd baseline.
    await env.warmUp(echo.port);
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    await closeServer(echo);
    await closeServer(resetter);
    destroyAllNetns();
  });

  it('a refusing destination: the app gets ECONNREFUSED at once, and nothing is left', async () => {
    const r = lastJson<ConnectResult>((await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(refusedPort)])).stdout);
    expect(r.code).toBe('ECONNREFUSED');
    expect(r.ms).toBeLessThan(2000);
    await env.settle(3000);
    expect(metricValue(await env.metrics(), 'synfin_tcp_handshake_duration_seconds_count', { result: 'upstream_refused' })).toBeGreaterThanOrEqual(1);
  });

  it('a blackholed destination: the dial times out after --connect-timeout, the app gets EHOSTUNREACH, nothing is left', async () => {
    const r = lastJson<ConnectResult>((await env.ns.exec(process.execPath, [PEER, 'connect', `${env.prefix}3`, '80'])).stdout);
    expect(r.code).toBe('EHOSTUNREACH');
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(5000);
    await env.settle(3000);
    expect(metricValue(await env.metrics(), 'synfin_upstream_connect_duration_seconds_count', { result: 'timeout' })).toBeGreaterThanOrEqual(1);
  });

  it('a destination that resets mid-stream: the app gets the data, then ECONNRESET; nothing is left', async () => {
    const r = lastJson<{ bytes: number; code: string | null }>((await env.ns.exec(process.execPath, [PEER, 'read', env.serverAddr, String(resetter.port)])).stdout);
    expect(r.code).toBe('ECONNRESET');
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThanOrEqual(64 * 1024);
    await env.settle(3000);
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_resets_total', { direction: 'sent', reason: 'upstream_reset' })).toBeGreaterThanOrEqual(1);
  });

  it('a destination host that vanishes mid-connection: reaped by --idle-timeout with an RST to the app; nothing is left', async () => {
    const app = env.ns.spawn(process.execPath, [PEER, 'hold', `${env.prefix}4`, '7000']);
    const lines = collectLines(app);
    try {
      await waitFor('the greeting from the vanishing host', () => lines.some((l) => l.includes('"data"')), (v) => v, 5000);
      // The host disappears: its link goes away without a FIN or RST reaching us.
      ipSync(['link', 'delete', 'dev', hostVeth]);
      app.stdin!.write('send 1000\n');
      const started = Date.now();
      await waitFor('the app to see the reset', () => lines.some((l) => l.includes('ECONNRESET')), (v) => v, 10_000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_S * 1000 - 200);
    } finally {
      await killAndWait(app);
    }
    await env.settle(3000);
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_connections_closed_total', { reason: 'idle_timeout' })).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('an app that vanishes without a FIN: the connection stays until --idle-timeout, then nothing is left', async () => {
    // The app talks from an extra address; deleting it, then killing the app, means its kernel
    // can send nothing more (no route for the source address): no FIN, no RST reaches synfin.
    const extra = `${env.prefix}9`;
    env.ns.ip(['addr', 'add', `${extra}/32`, 'dev', env.tunName]);
    const app = env.ns.spawn(process.execPath, [PEER, 'hold', env.serverAddr, String(echo.port), extra]);
    const lines = collectLines(app);
    await waitFor('the echo', () => lines.some((l) => l.includes('"data"')), (v) => v, 5000);
    expect(env.synfin.stack.connectionCount).toBe(1);
    env.ns.ip(['addr', 'del', `${extra}/32`, 'dev', env.tunName]);
    await killAndWait(app);
    await sleep(500);
    // No FIN arrived: synfin still holds the connection, ESTABLISHED.
    const rows = await env.api<{ connections: Array<{ state: string }> }>('/api/connections');
    expect(rows.connections.map((r) => r.state)).toEqual(['ESTABLISHED']);
    await env.settle(IDLE_S * 1000 + 3000);
  }, 20_000);
});

describeIfTun('faults: --max-connections', () => {
  let env: Env;
  let echo: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    echo = await listen((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
    env = await startEnv({ maxConnections: 3 });
    await env.warmUp(echo.port);
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    await closeServer(echo);
    destroyAllNetns();
  });

  it('new SYNs beyond the limit are refused at once and counted as syn_limit; capacity returns when connections close', async () => {
    const holders = [0, 1, 2].map(() => env.ns.spawn(process.execPath, [PEER, 'hold', env.serverAddr, String(echo.port)]));
    const outputs = holders.map(collectLines);
    try {
      await waitFor('three connections', () => outputs.every((l) => l.some((x) => x.includes('"data"'))), (v) => v, 10_000);
      const before = metricValue(await env.metrics(), 'synfin_tcp_dropped_segments_total', { reason: 'syn_limit' });
      const r = lastJson<ConnectResult>((await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(echo.port)])).stdout);
      expect(r.code).toBe('ECONNREFUSED');
      expect(r.ms).toBeLessThan(1000);
      expect(metricValue(await env.metrics(), 'synfin_tcp_dropped_segments_total', { reason: 'syn_limit' })).toBe(before + 1);
      expect(env.synfin.stack.connectionCount).toBe(3);
    } finally {
      await Promise.all(holders.map((h) => killAndWait(h, 'SIGTERM')));
    }
    await env.settle(5000);
    const again = lastJson<ConnectResult>((await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(echo.port)])).stdout);
    expect(again.ok).toBe(true);
    await env.settle(5000);
  }, 30_000);
});

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describeIfTun('faults: the TUN device is deleted under synfin', () => {
  let env: Env;
  let echo: Awaited<ReturnType<typeof listen>>;
  const upstreamErrors: string[] = [];

  beforeAll(async () => {
    echo = await listen((s) => {
      s.on('data', (d) => s.write(d)).on('end', () => s.end());
      s.on('error', (e: NodeJS.ErrnoException) => upstreamErrors.push(e.code ?? 'error'));
      s.on('end', () => upstreamErrors.push('END'));
    });
    env = await startEnv({});
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    await closeServer(echo);
    destroyAllNetns();
  });

  it('logs one clear error, /readyz turns 503 (/healthz stays 200), open connections are reset upstream and the device fd is released', async () => {
    const app = env.ns.spawn(process.execPath, [PEER, 'hold', env.serverAddr, String(echo.port)]);
    const lines = collectLines(app);
    await waitFor('the echo', () => lines.some((l) => l.includes('"data"')), (v) => v, 5000);
    expect(await env.status('/readyz')).toBe(200);
    expect(echo.sockets.size).toBe(1);
    const fdsBefore = env.fds();
    env.ns.ip(['link', 'delete', 'dev', env.tunName]);
    await waitFor('/readyz 503', () => env.status('/readyz'), (s) => s === 503, 5000);
    expect(await env.status('/healthz')).toBe(200);
    const errors = env.logs.filter((l) => l.includes('"level":50'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`TUN device ${env.tunName} failed; no longer ready: 1 connections reset`));
    // The upstream leg was reset, not left open: the destination saw ECONNRESET.
    await waitFor('the upstream socket to close', () => echo.sockets.size, (v) => v === 0, 5000);
    expect(upstreamErrors).toEqual(['ECONNRESET']);
    expect(env.tableSize()).toBe(0);
    expect(env.synfin.proxy.pipes.size).toBe(0);
    // The dead device's descriptor and the upstream socket are closed.
    expect(env.fds()).toBeLessThanOrEqual(fdsBefore - 2);
    await killAndWait(app);
    await env.synfin.shutdown('test');
  }, 20_000);
});
