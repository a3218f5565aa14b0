import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { FuncSignature } from '../check/index.js';

export type WasmValue =
  | { type: 'i32'; value: number }
  | { type: 'i64'; value: string }
  | { type: 'f32'; value: number }
  | { type: 'f64'; value: number };

type Arg = WasmValue | number | string;

function bad(index: number, message: string): AgentError {
  return new AgentError('AGT_ERR_BAD_REQUEST', `field args.${index}: ${message}`, { field: `args.${index}` });
}

/**
 * Types call arguments from the export's signature, so clients may send `[1, 2]` for `add(i32, i32)`. Typed
 * values are checked against the signature too: a mismatch is a clear 400 here instead of a trap on the runner.
 */
export function coerceArgs(fn: string, sig: FuncSignature, args: readonly Arg[]): WasmValue[] {
  if (args.length !== sig.params.length) {
    throw new AgentError('AGT_ERR_BAD_REQUEST', `field args: ${fn} takes ${sig.params.length} argument(s) (${sig.params.join(', ') || 'none'}), received ${args.length}`, { field: 'args' });
  }
  return args.map((a, i) => {
    const want = sig.params[i]!;
    if (want !== 'i32' && want !== 'i64' && want !== 'f32' && want !== 'f64') throw bad(i, `parameter type ${want} cannot be passed through the API`);
    if (typeof a === 'object') {
      if (a.type !== want) throw bad(i, `${fn} expects ${want}, received ${a.type}`);
      return a;
    }
    switch (want) {
      case 'i32': {
        const n = typeof a === 'string' ? Number(a) : a;
        if (!Number.isInteger(n) || n < -2147483648 || n > 4294967295) throw bad(i, `expected an i32 integer, received ${JSON.stringify(a)}`);
        return { type: 'i32', value: n };
      }
      case 'i64': {
        if (typeof a === 'number' && !Number.isSafeInteger(a)) throw bad(i, `expected an i64 integer (use a decimal string beyond 2^53), received ${a}`);
        const v = String(a);
        try {
          const b = BigInt(v);
          if (b < -(2n ** 63n) || b >= 2n ** 64n) throw new Error('range');
        } catch {
          throw bad(i, `expected an i64 integer, received ${JSON.stringify(a)}`);
        }
        return { type: 'i64', value: v };
      }
      default: {
        const n = typeof a === 'string' ? Number(a) : a;
        if (typeof n !== 'number' || Number.isNaN(n)) throw bad(i, `expected a ${want} number, received ${JSON.stringify(a)}`);
        return { type: want, value: n };
      }
    }
  });
}
