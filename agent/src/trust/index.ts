export { TrustStore } from './trust-store.js';
export type { TrustPolicy, Verdict } from './trust-store.js';
export { decodeSignature, keyIdOf, parsePublicKey } from './keys.js';
export type { TrustedKey } from './keys.js';
