/**
 * How a sleeping consumer is woken. The ring sets the want-kick flag and bumps the doorbell word; a Notifier adds
 * whatever the medium needs (a futex wake, nothing at all for polling) and knows how to sleep until the word moves.
 */
export interface DoorbellWords {
  /** The whole region as Int32 words. */
  readonly words: Int32Array;
  /** Word index of the doorbell this side sleeps on (its receive ring's). */
  readonly rxIndex: number;
  /** Word index of the doorbell this side rings (its transmit ring's). */
  readonly txIndex: number;
  /** Address of words[0] in this process, when the region is an mmap (needed for futex). */
  readonly baseAddress?: bigint;
}

export interface Notifier {
  readonly name: string;
  /**
   * False when the sleeper watches the ring itself (polling): the consumer then never sets its want-kick flag,
   * which keeps the producer from touching that cache line on every publish.
   */
  readonly wantsKicks: boolean;
  bind(bell: DoorbellWords): void;
  /** Sleep until `changed()` is true or `timeoutMs` passes. Resolves true if it saw a change. */
  wait(changed: () => boolean, timeoutMs: number): Promise<boolean>;
  /** Called by the producer after publish() said the consumer asked for a kick. */
  kick(): void;
  /**
   * Ends a wait() in progress at once (it resolves false), for a consumer that would rather poll: it just sent
   * a request and expects the answer soon. Optional; without it the wait runs to its end as usual.
   */
  interrupt?(): void;
  /** Stops waiting; a returned promise settles once nothing sleeps on the region any more. */
  close(): void | Promise<void>;
}
