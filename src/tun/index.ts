export { Tun, RxBatch, TunCounters, DEFAULT_SLOT_SIZE, DEFAULT_BATCH_SIZE, DEFAULT_NAME } from './tun.js';
export type { TunOpenOptions, RxHandler } from './tun.js';
export { runIp, linkMtu } from './ip.js';
export type { IpOptions } from './ip.js';
export { tunOpenError, loadAddon, ADDON_PATH } from './native.js';
export type { NativeTunDevice, NativeTunAddon } from './native.js';
export * from '../wire/vnet.js';
export * from './tcp-info.js';
