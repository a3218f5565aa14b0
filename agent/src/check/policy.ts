import { z } from 'zod';
import { reject } from './errors.js';
import type { ModuleInfo } from './types.js';

export interface CheckPolicy {
  /** Checked before anything is parsed. */
  readonly maxModuleBytes: number;
  /** Every import must come from one of these modules; the default allows WASI preview1 only. */
  readonly allowedImportModules: readonly string[];
  /** Per memory, defined or imported, in 64 KiB pages. */
  readonly maxInitialMemoryPages: number;
  /** The module must be runnable: a command (`_start`) or a reactor (see allowReactor). */
  readonly requireEntryPoint: boolean;
  /**
   * Accept modules the caller declares as reactors although they do not export `_initialize` (WASI makes it
   * optional), as long as they export at least one function to call.
   */
  readonly allowReactor: boolean;
}

export interface CheckOptions {
  /** What the uploader says the module is; `undefined` lets the module's exports decide. */
  readonly declaredKind?: 'command' | 'reactor';
}

const MiB = 1024 * 1024;

export const defaultCheckPolicy: CheckPolicy = Object.freeze({
  maxModuleBytes: 64 * MiB,
  allowedImportModules: Object.freeze(['wasi_snapshot_preview1']),
  maxInitialMemoryPages: 16384, // 1 GiB
  requireEntryPoint: true,
  allowReactor: false,
});

/** For config files: every field is optional and falls back to defaultCheckPolicy; unknown keys are errors. */
export const checkPolicySchema = z.strictObject({
  maxModuleBytes: z.number().int().positive().default(defaultCheckPolicy.maxModuleBytes),
  allowedImportModules: z
    .array(z.string().min(1))
    .default(() => [...defaultCheckPolicy.allowedImportModules]),
  maxInitialMemoryPages: z.number().int().nonnegative().default(defaultCheckPolicy.maxInitialMemoryPages),
  requireEntryPoint: z.boolean().default(defaultCheckPolicy.requireEntryPoint),
  allowReactor: z.boolean().default(defaultCheckPolicy.allowReactor),
}) satisfies z.ZodType<CheckPolicy>;

export function checkSize(size: number, policy: CheckPolicy): void {
  if (size > policy.maxModuleBytes) {
    throw reject(
      'AGT_ERR_TOO_LARGE',
      'max-size',
      {},
      `${size} bytes (${bytesText(size)}) is over the limit of ${policy.maxModuleBytes} bytes (${bytesText(policy.maxModuleBytes)})`,
      { size, limit: policy.maxModuleBytes },
    );
  }
}

export function applyPolicy(info: ModuleInfo, policy: CheckPolicy, options: CheckOptions): void {
  checkImports(info, policy);
  checkMemories(info, policy);
  if (policy.requireEntryPoint) checkEntryPoint(info, policy, options);
}

function checkImports(info: ModuleInfo, policy: CheckPolicy): void {
  const allowed = new Set(policy.allowedImportModules);
  const bad = info.imports.filter((i) => !allowed.has(i.module));
  const first = bad[0];
  if (first === undefined) return;
  const list = policy.allowedImportModules.length === 0 ? 'none' : policy.allowedImportModules.join(', ');
  const more = bad.length > 1 ? `, and ${bad.length - 1} more disallowed imports` : '';
  throw reject(
    'AGT_ERR_POLICY',
    'import-module',
    { section: 'import', offset: first.offset },
    `module ${JSON.stringify(first.module)} is not allowed (import ${JSON.stringify(first.module)}.${JSON.stringify(first.name)}${more}; allowed: ${list})`,
    { module: first.module, name: first.name, disallowedModules: [...new Set(bad.map((i) => i.module))] },
  );
}

function checkMemories(info: ModuleInfo, policy: CheckPolicy): void {
  for (const m of info.memories) {
    if (m.min <= policy.maxInitialMemoryPages) continue;
    throw reject(
      'AGT_ERR_POLICY',
      'memory-limit',
      { section: m.imported ? 'import' : 'memory', offset: m.offset },
      `memory ${m.index} starts with ${m.min} pages (${bytesText(m.min * 65536)}), over the limit of ` +
        `${policy.maxInitialMemoryPages} pages (${bytesText(policy.maxInitialMemoryPages * 65536)})`,
      { memory: m.index, pages: m.min, limit: policy.maxInitialMemoryPages },
    );
  }
}

function checkEntryPoint(info: ModuleInfo, policy: CheckPolicy, options: CheckOptions): void {
  const functions = info.exports.filter((e) => e.kind === 'function').map((e) => e.name);
  const declared = options.declaredKind;
  if (declared === undefined && info.kind !== 'library') return;
  if (declared === 'command' && info.kind === 'command') return;
  if (declared === 'reactor' && (info.kind === 'reactor' || (policy.allowReactor && functions.length > 0))) return;

  let problem: string;
  if (declared === 'command') {
    problem = 'declared as a command but does not export a function "_start"';
  } else if (declared === 'reactor') {
    problem = policy.allowReactor
      ? 'declared as a reactor but exports no functions'
      : 'declared as a reactor but does not export "_initialize" (allowReactor is off)';
  } else {
    problem = 'no entry point: exports neither a function "_start" (command) nor "_initialize" (reactor)';
  }
  const shown = functions.slice(0, 8).join(', ') + (functions.length > 8 ? `, ... (${functions.length} in all)` : '');
  const exportSection = info.sections.find((s) => s.name === 'export');
  throw reject(
    'AGT_ERR_POLICY',
    'entry-point',
    exportSection === undefined ? {} : { section: 'export', offset: exportSection.offset },
    `${problem}; exported functions: ${functions.length === 0 ? 'none' : shown}`,
    { kind: info.kind, ...(declared === undefined ? {} : { declaredKind: declared }) },
  );
}

function bytesText(n: number): string {
  if (n >= 1024 * MiB) return `${+(n / (1024 * MiB)).toFixed(2)} GiB`;
  if (n >= MiB) return `${+(n / MiB).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)} KiB`;
  return `${n} B`;
}
