import type { ModuleInfo, ModuleKind } from './types.js';

export interface ModuleSummary {
  readonly kind: ModuleKind;
  readonly size: number;
  readonly imports: number;
  readonly exports: readonly string[];
  /** Memory 0, which is the one WASI and most toolchains use; null if the module has none. */
  readonly memory: {
    readonly min: number;
    readonly max: number | null;
    readonly shared: boolean;
    readonly memory64: boolean;
    readonly imported: boolean;
  } | null;
}

export function describeModule(info: ModuleInfo): ModuleSummary {
  const m = info.memories[0];
  return {
    kind: info.kind,
    size: info.size,
    imports: info.imports.length,
    exports: info.exports.map((e) => e.name),
    memory: m === undefined ? null : { min: m.min, max: m.max, shared: m.shared, memory64: m.memory64, imported: m.imported },
  };
}
