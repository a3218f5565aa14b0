/**
 * Schemas built on first use. zod builds a schema's whole object graph when the expression runs (every
 * `z.number().int()` is a few class instances with their methods), and module-level schemas run at import: in
 * the QEMU guest under TCG that was about 1 s of the agent's start, for schemas most processes never use (the
 * runner's requests in the agent, calls and batches in an agent that only runs commands).
 *
 * `memo(build)` is the memoised factory: modules compose their schemas from it, so a schema built from others
 * holds the real instances. `lazySchema(get)` is what they export under the old name: a stand-in that builds
 * the schema when it is first touched and then forwards everything to it (`.safeParse`, `.optional()`,
 * `.shape`, nesting inside another schema, `instanceof`), so importers need no change and validation and
 * messages are exactly the built schema's. The stand-in is typed as the schema itself.
 */

/** A factory that runs `build` once, on its first call, and returns that result ever after. */
export function memo<T>(build: () => T): () => T {
  let built = false;
  let value: T | undefined;
  return () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value as T;
  };
}

/**
 * A stand-in for the object `get` returns (call it with a `memo` factory), built on first access. The target is
 * a plain extensible object, so the proxy may report any prototype and property descriptors; descriptors are
 * reported configurable because the target does not hold them (a proxy must not claim a non-configurable
 * property its target lacks).
 */
export function lazySchema<T extends object>(get: () => T): T {
  return new Proxy({} as T, {
    get: (_t, key) => {
      const real = get();
      return Reflect.get(real, key, real) as unknown;
    },
    set: (_t, key, value) => {
      const real = get();
      return Reflect.set(real, key, value, real);
    },
    has: (_t, key) => Reflect.has(get(), key),
    ownKeys: () => Reflect.ownKeys(get()),
    getOwnPropertyDescriptor: (_t, key) => {
      const d = Reflect.getOwnPropertyDescriptor(get(), key);
      return d && { ...d, configurable: true };
    },
    defineProperty: (_t, key, d) => Reflect.defineProperty(get(), key, d),
    deleteProperty: (_t, key) => Reflect.deleteProperty(get(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
  });
}

/** Parses of one schema that skip zod's compiled fast path (see parseParams). */
const INTERPRETED_PARSES = 8;
const parses = new WeakMap<object, number>();
const JITLESS = Object.freeze({ jitless: true } as const);

/**
 * The parse options for the next parse of `schema`: jitless for its first few parses, then zod's default. On an
 * object schema's first parse zod generates a fast path as JavaScript source and compiles it with `new Function`;
 * that pays off over many parses (a busy call path), not for the handful a process does of most message kinds,
 * and under QEMU's TCG it cost tens of milliseconds per schema on the first deploy. Same validation and issues
 * either way: the fast path falls back to the interpreted one whenever anything is wrong.
 */
export function parseParams(schema: object): { readonly jitless: true } | undefined {
  const n = parses.get(schema) ?? 0;
  if (n >= INTERPRETED_PARSES) return undefined;
  parses.set(schema, n + 1);
  return JITLESS;
}
