import { inspectModule } from './parse.js';
import { applyPolicy, checkSize, defaultCheckPolicy } from './policy.js';
import type { CheckOptions, CheckPolicy } from './policy.js';
import type { ModuleInfo } from './types.js';
import { validateWithV8 } from './validate.js';

/**
 * The gate every upload passes: size (before reading a byte of it), binary format, V8 validation, policy.
 * Returns what was learned so callers never parse twice; throws an AgentError naming rule, section, offset.
 */
export function checkModule(
  bytes: Uint8Array,
  policy: CheckPolicy = defaultCheckPolicy,
  options: CheckOptions = {},
): ModuleInfo {
  if (bytes instanceof Uint8Array) checkSize(bytes.length, policy);
  // Bytes in shared memory can change under us (the peer owns the other end): check and compile one copy,
  // or the parser and V8 could see different modules.
  const stable = bytes instanceof Uint8Array && bytes.buffer instanceof SharedArrayBuffer ? new Uint8Array(bytes) : bytes;
  const info = inspectModule(stable);
  validateWithV8(stable, info);
  applyPolicy(info, policy, options);
  return info;
}
