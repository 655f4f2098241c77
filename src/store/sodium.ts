import sodium from 'libsodium-wrappers';
import { TrustRunError } from '../core/index.js';

/**
 * libsodium-wrappers loads a WebAssembly module asynchronously once; every sealing function is
 * synchronous afterwards. `loadSodium()` must have resolved before any of them runs (openStore
 * and the exported helpers see to it).
 */
export type Sodium = typeof sodium;

let loading: Promise<Sodium> | null = null;
let loaded: Sodium | null = null;

export function loadSodium(): Promise<Sodium> {
  loading ??= sodium.ready.then(() => {
    loaded = sodium;
    return sodium;
  });
  return loading;
}

/** The loaded library; throws TR_INTERNAL when `loadSodium()` has not resolved yet. */
export function sodiumReady(): Sodium {
  if (!loaded)
    throw new TrustRunError('TR_INTERNAL', 'libsodium is not loaded: await loadSodium() first');
  return loaded;
}
