export { Tun, RxBatch, TunCounters, DEFAULT_SLOT_SIZE, DEFAULT_BATCH_SIZE, DEFAULT_NAME, MAX_QUEUES } from './tun.js';
export type { TunOpenOptions, RxHandler } from './tun.js';
export { runIp, linkMtu } from './ip.js';
export type { IpOptions } from './ip.js';
export { tunOpenError } from './open-error.js';
export { loadAddon, ADDON_PATH } from '../native/addon.js';
export type { NativeTunDevice, NativeAddon } from '../native/addon.js';
export * from '../wire/vnet.js';
