/**
 * `synfin run`: start the proxy and keep it running until SIGTERM/SIGINT. The only entry point
 * that opens the TUN device and listens (through runtime.ts), and the one that gives up its
 * capabilities once the device is ready (src/tun/caps.ts).
 */
import type { Config } from './config.js';

export async function runProxy(config: Config): Promise<void> {
  if (config.workers > 1) {
    // --workers N: the main thread opens N queues, drops capabilities (its exec hands over the N
    // fds) and runs N worker threads, one stack each (src/workers/supervisor.ts).
    const { startWorkers } = await import('./workers/supervisor.js');
    await startWorkers(config, { installSignalHandlers: true, dropCapabilities: true });
    return;
  }
  // A process holding capabilities readies the device and re-executes itself without them
  // before the rest of synfin (Fastify, prom-client, the stack) is even loaded: the exec then
  // costs one Node start-up. After the exec, or without capabilities, this does nothing here.
  const { holdsCapabilities, ownCapabilities, INHERITED_TUN_FD_ENV } = await import('./tun/caps.js');
  if (process.env[INHERITED_TUN_FD_ENV] === undefined && holdsCapabilities(ownCapabilities())) {
    const { openConfiguredDevice } = await import('./tun/configure.js');
    openConfiguredDevice(config, { dropCapabilities: true, listenPort: config.listenPort, keepCapabilities: config.keepCapabilities });
  }
  const { startSynfin } = await import('./runtime.js');
  await startSynfin(config, { installSignalHandlers: true, dropCapabilities: true });
}
