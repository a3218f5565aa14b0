import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { ErrorCode } from '../../../runner-proto/src/errors/index.js';

/** Hex, because that is what `xxd`, `wasm-objdump` and V8's own messages line up against. */
export function formatOffset(n: number): string {
  return `0x${n.toString(16)}`;
}

export interface Location {
  readonly section?: string;
  readonly offset?: number;
}

/** "import section at byte 0x1a", "header at byte 0x4", "at byte 0x30", "module" */
export function describeLocation(loc: Location): string {
  const at = loc.offset === undefined ? '' : ` at byte ${formatOffset(loc.offset)}`;
  if (loc.section === undefined) return at === '' ? 'module' : at.slice(1);
  if (loc.section === 'header') return `header${at}`;
  return `${loc.section} section${at}`;
}

/**
 * Every rejection goes through here so that the message and the details can never disagree: the message
 * is built from the same section and offset that land in `details`.
 */
export function reject(
  code: ErrorCode,
  rule: string,
  loc: Location,
  text: string,
  extra: Readonly<Record<string, unknown>> = {},
  cause?: unknown,
): AgentError {
  const details: Record<string, unknown> = { ...extra, rule };
  if (loc.section !== undefined) details.section = loc.section;
  if (loc.offset !== undefined) details.offset = loc.offset;
  // One line, always: V8 and user-supplied names may carry newlines, and logs and CLI output are line based.
  const message = `${describeLocation(loc)}: ${text}`.replace(/[\r\n]+/g, ' ');
  return new AgentError(code, message, details, cause === undefined ? undefined : { cause });
}

export function malformed(
  rule: string,
  loc: Location,
  text: string,
  extra?: Readonly<Record<string, unknown>>,
): AgentError {
  return reject('AGT_ERR_WASM_MALFORMED', rule, loc, text, extra);
}
