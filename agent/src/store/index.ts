export { ModuleStore, DEFAULT_MAX_MODULE_BYTES, DEFAULT_UNNAMED_GRACE_MS } from './store.js';
export type {
  ModuleStoreOptions,
  PutOptions,
  PutStreamOptions,
  PutResult,
  RemoveResult,
  StoreProblem,
  StoreProblemKind,
} from './store.js';
export { parseDigest, formatDigest, digestOf, isDigest, DIGEST_ALGORITHM } from './digest.js';
export type { ParsedDigest } from './digest.js';
export { validateName, isValidName, NAME_MAX_LENGTH } from './name.js';
export { META_MAX_BYTES } from './record.js';
export type { BlobInfo, NameRecord, ModuleMeta, JsonValue } from './record.js';
export { KeyedLock } from './keyed-lock.js';
