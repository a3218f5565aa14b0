export { DesiredState, LEGACY_STATE_FILE, STATE_FILE } from './desired-state.js';
export { SLOT_HEADER_BYTES, SlotFile, decodeSlot, encodeSlot, scanSlots } from './slot-file.js';
export type { SlotCopy, SlotScan } from './slot-file.js';
export { STATE_FORMAT_VERSION, appSpecSchema, deployFingerprint, stateFileSchema } from './app-spec.js';
export type { AppSpec, StateFile } from './app-spec.js';
export { sweepTemporaries, writeFileAtomic } from './atomic-file.js';
