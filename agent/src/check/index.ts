export { checkModule } from './check.js';
export { describeModule } from './describe.js';
export type { ModuleSummary } from './describe.js';
export { formatOffset } from './errors.js';
export { inspectModule } from './parse.js';
export { checkPolicySchema, defaultCheckPolicy } from './policy.js';
export type { CheckOptions, CheckPolicy } from './policy.js';
export type {
  ExportInfo,
  ExternKind,
  FuncSignature,
  ImportInfo,
  Limits,
  MemoryInfo,
  ModuleInfo,
  ModuleKind,
  SectionInfo,
  SectionName,
  ValType,
} from './types.js';
