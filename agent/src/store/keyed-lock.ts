/**
 * Serializes async work per key inside one process. Each key keeps only the tail of its chain; the entry is
 * dropped when the last holder finishes, so idle keys cost nothing.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The chain only ever holds `mine`-style promises, which never reject, so one failed holder
    // cannot poison the key for the next.
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Number of keys with work queued or running; for tests and metrics. */
  get size(): number {
    return this.#tails.size;
  }
}
