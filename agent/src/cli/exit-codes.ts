import type { ErrorCode } from '../../../runner-proto/src/errors/index.js';

/**
 * Exit codes of `wasmedge_emit` that scripts can rely on. `run`, `invoke` and `call` exit with the module's own
 * code (as `wasmedge run` does: the WASI exit code, 134 for traps and limits, 1 for load errors); every other
 * failure maps to one of these. docs/api.md and `wasmedge_emit --help` list them.
 */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  REJECTED: 3,
  NOT_FOUND: 4,
  UNAVAILABLE: 5,
  DENIED: 6,
  CONFLICT: 7,
} as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'AGT_ERR_BAD_REQUEST':
    case 'AGT_ERR_CONFIG_INVALID':
      return EXIT.USAGE;
    case 'AGT_ERR_NAME_INVALID':
    case 'AGT_ERR_TOO_LARGE':
    case 'AGT_ERR_WASM_MALFORMED':
    case 'AGT_ERR_WASM_INVALID':
    case 'AGT_ERR_POLICY':
    case 'AGT_ERR_DIGEST_MISMATCH':
    case 'AGT_ERR_SIGNATURE':
    case 'AGT_ERR_RUN_LOAD':
      return EXIT.REJECTED;
    case 'AGT_ERR_NOT_FOUND':
      return EXIT.NOT_FOUND;
    case 'AGT_ERR_AGENT_UNAVAILABLE':
    case 'AGT_ERR_RUNNER_UNAVAILABLE':
    case 'AGT_ERR_TIMEOUT':
      return EXIT.UNAVAILABLE;
    case 'AGT_ERR_UNAUTHORIZED':
      return EXIT.DENIED;
    case 'AGT_ERR_CONFLICT':
      return EXIT.CONFLICT;
    default:
      return EXIT.FAILURE;
  }
}
