/**
 * `synfin run`: start the proxy and keep it running until SIGTERM/SIGINT. The only entry point
 * that opens the TUN device and listens (through runtime.ts), and the one that gives up its
 * capabilities once the device is ready (src/tun/caps.ts).
 */
import type { Config } from './config.js';
import { startSynfin } from './runtime.js';

export async function runProxy(config: Config): Promise<void> {
  await startSynfin(config, { installSignalHandlers: true, dropCapabilities: true });
}
