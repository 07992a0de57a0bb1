/**
 * `synfin run`: start the proxy and keep it running until SIGTERM/SIGINT. The only entry point
 * that opens the TUN device and listens (through runtime.ts).
 */
import type { Config } from './config.js';
import { startSynfin } from './runtime.js';

export async function runProxy(config: Config): Promise<void> {
  await startSynfin(config, { installSignalHandlers: true });
}
