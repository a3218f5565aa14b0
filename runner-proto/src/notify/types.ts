/**
 * How a sleeping consumer is woken. The ring sets the want-kick flag and bumps the doorbell word; a Notifier adds
 * whatever else the medium needs (a futex wake, a byte on a socket) and knows how to sleep until the word moves.
 */
export interface Notifier {
  readonly name: string;
  /** Sleep until `changed()` is true or `timeoutMs` passes. Resolves true if woken by a change. */
  wait(changed: () => boolean, timeoutMs: number): Promise<boolean>;
  /** Called by the producer after publish() asked for a kick. */
  kick(): void;
  close(): void;
}
