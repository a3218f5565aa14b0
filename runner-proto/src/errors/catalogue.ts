/**
 * The one error catalogue of the project. Every error that crosses a surface (CLI, HTTP, channel, logs)
 * carries a stable `AGT_ERR_*` code from this table; messages say what was received and what was expected.
 * docs/errors.md documents every code with "how to solve"; test/errors.test.ts pins the two together.
 */
export const ERROR_CATALOGUE = {
  AGT_ERR_CONFIG_INVALID: { status: 400, summary: 'configuration is invalid' },
  AGT_ERR_BAD_REQUEST: { status: 400, summary: 'request body or parameters are invalid' },
  AGT_ERR_NAME_INVALID: { status: 400, summary: 'application or module name is invalid' },
  AGT_ERR_NOT_FOUND: { status: 404, summary: 'no such module or application' },
  AGT_ERR_TOO_LARGE: { status: 413, summary: 'input exceeds a size limit' },
  AGT_ERR_WASM_MALFORMED: { status: 422, summary: 'module bytes are not a well-formed WebAssembly binary' },
  AGT_ERR_WASM_INVALID: { status: 422, summary: 'module fails WebAssembly validation' },
  AGT_ERR_POLICY: { status: 422, summary: 'module violates the deployment policy' },
  AGT_ERR_DIGEST_MISMATCH: { status: 422, summary: 'content does not match its sha256 digest' },
  AGT_ERR_SIGNATURE: { status: 403, summary: 'module signature is missing or does not verify under a trusted key' },
  AGT_ERR_UNAUTHORIZED: { status: 401, summary: 'the API request carries no valid bearer token' },
  AGT_ERR_CONFLICT: { status: 409, summary: 'the request conflicts with the application state' },
  AGT_ERR_STORE_IO: { status: 500, summary: 'module store could not read or write' },
  AGT_ERR_RUNNER_UNAVAILABLE: { status: 503, summary: 'the runner is not connected' },
  AGT_ERR_AGENT_UNAVAILABLE: { status: 503, summary: 'the agent API cannot be reached' },
  AGT_ERR_TIMEOUT: { status: 504, summary: 'a wait exceeded its time limit' },
  AGT_ERR_CHANNEL_FRAME: { status: 502, summary: 'a channel frame failed a check' },
  AGT_ERR_CHANNEL_REGION: { status: 500, summary: 'the shared-memory region could not be used' },
  AGT_ERR_PROTOCOL: { status: 502, summary: 'the peer broke the channel protocol' },
  AGT_ERR_RUN_LOAD: { status: 422, summary: 'the runner could not load or instantiate the module' },
  AGT_ERR_INTERNAL: { status: 500, summary: 'internal error' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

const BRAND = Symbol.for('sel4-wasm-bridge.AgentError');

/** Structured details that locate an error: which rule, field, section, byte offset, path. */
export interface ErrorDetails {
  readonly rule?: string;
  readonly field?: string;
  readonly section?: string;
  readonly offset?: number;
  readonly path?: string;
  readonly [key: string]: unknown;
}

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  readonly status: number;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
    this.details = Object.freeze({ ...details });
    this.status = ERROR_CATALOGUE[code].status;
  }

  /** Works across two copies of this package (a bundled agent and a test importing the sources). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  get [BRAND](): true {
    return true;
  }

  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}

/** Rebuilds an AgentError from its JSON form (HTTP bodies, channel ERROR frames). */
export function errorFromJSON(value: { code?: unknown; message?: unknown; details?: unknown }): AgentError {
  const code = isErrorCode(value.code) ? value.code : 'AGT_ERR_INTERNAL';
  const message = typeof value.message === 'string' ? value.message : 'unknown error';
  const details = typeof value.details === 'object' && value.details !== null ? (value.details as ErrorDetails) : {};
  return new AgentError(code, message, details);
}

/** Wraps anything thrown into an AgentError without losing the cause. */
export function toAgentError(err: unknown, fallback: ErrorCode = 'AGT_ERR_INTERNAL'): AgentError {
  if (err instanceof AgentError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError(fallback, message, {}, { cause: err });
}
