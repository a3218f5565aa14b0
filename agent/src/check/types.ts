/**
 * What the checker learns about a module. Everything is plain data (numbers, strings, arrays, null) so a
 * ModuleInfo can be logged, stored beside the module and sent over the API as JSON without conversion.
 */

export type SectionName =
  | 'custom'
  | 'type'
  | 'import'
  | 'function'
  | 'table'
  | 'memory'
  | 'global'
  | 'export'
  | 'start'
  | 'element'
  | 'code'
  | 'data'
  | 'datacount'
  | 'tag';

export type NumType = 'i32' | 'i64' | 'f32' | 'f64';

/** Nullable references to an abstract heap type, by their shorthand names. */
export type RefTypeName =
  | 'funcref'
  | 'externref'
  | 'anyref'
  | 'eqref'
  | 'i31ref'
  | 'structref'
  | 'arrayref'
  | 'exnref'
  | 'nullref'
  | 'nullfuncref'
  | 'nullexternref'
  | 'nullexnref';

/** Typed references (GC proposal) have no shorthand, so they are spelled the way the text format does. */
export type ValType = NumType | 'v128' | RefTypeName | `(ref ${string})`;

export interface FuncSignature {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

export type ExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface SectionInfo {
  readonly id: number;
  readonly name: SectionName;
  /** Offset of the section's id byte. */
  readonly offset: number;
  /** Offset of the first content byte, after the id and the size LEB128. */
  readonly contentOffset: number;
  /** Declared content size in bytes (the header is not counted). */
  readonly size: number;
  /** Only for custom sections. */
  readonly customName?: string;
}

export interface Limits {
  readonly min: number;
  readonly max: number | null;
  readonly shared: boolean;
  /** Memory64 / table64: the limits are u64 and the index type is i64. */
  readonly is64: boolean;
}

export interface ImportInfo {
  readonly module: string;
  readonly name: string;
  readonly kind: ExternKind;
  /** Offset of the import entry (its module name length). */
  readonly offset: number;
  /** Function and tag imports: the type they refer to. */
  readonly typeIndex?: number;
  readonly signature?: FuncSignature;
  /** Memory and table imports. */
  readonly limits?: Limits;
}

export interface ExportInfo {
  readonly name: string;
  readonly kind: ExternKind;
  readonly index: number;
  readonly offset: number;
  /** Only for function exports. */
  readonly signature?: FuncSignature;
}

export interface MemoryInfo {
  /** Index in the memory index space: imported memories come first. */
  readonly index: number;
  /** In 64 KiB pages. */
  readonly min: number;
  readonly max: number | null;
  readonly shared: boolean;
  readonly memory64: boolean;
  readonly imported: boolean;
  /** Offset of the import entry or of the memory type in the memory section. */
  readonly offset: number;
  readonly importedFrom?: { readonly module: string; readonly name: string };
}

/**
 * command: exports `_start` (run once, like a program). reactor: exports `_initialize` (instantiate once,
 * then call exports). library: neither; whether it may be deployed is a policy question.
 */
export type ModuleKind = 'command' | 'reactor' | 'library';

export interface ModuleInfo {
  readonly size: number;
  readonly version: number;
  readonly sections: readonly SectionInfo[];
  readonly customSections: readonly string[];
  readonly imports: readonly ImportInfo[];
  readonly exports: readonly ExportInfo[];
  readonly memories: readonly MemoryInfo[];
  /** Imported plus defined functions. */
  readonly functionCount: number;
  /** Function index of the start section, if any. */
  readonly start: number | null;
  readonly kind: ModuleKind;
}
