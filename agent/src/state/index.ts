export { DesiredState } from './desired-state.js';
export { STATE_FORMAT_VERSION, appSpecSchema, deployFingerprint, stateFileSchema } from './app-spec.js';
export type { AppSpec, StateFile } from './app-spec.js';
export { sweepTemporaries, writeFileAtomic } from './atomic-file.js';
