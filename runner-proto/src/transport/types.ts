import type { Frame } from '../frame/index.js';
import type { FrameToSend, RingFault } from '../ring/index.js';

export type TransportFault = RingFault | { readonly code: 'stream-closed' } | { readonly code: 'stream-error'; readonly message: string };

export interface TransportHandlers {
  frame(f: Frame): void;
  /** A frame or ring failed its checks; the transport has already resynchronised past it. */
  fault(f: TransportFault): void;
  /** The medium itself is gone (socket closed, region unmapped). */
  closed(): void;
}

/** One way to move frames between the two sides: a shared-memory ring pair, or a byte stream. */
export interface FrameTransport {
  readonly kind: 'ring' | 'stream';
  /** Largest body one frame may carry on this transport. */
  readonly maxBody: number;
  start(handlers: TransportHandlers): void;
  /** Queues one frame; waits (bounded by timeoutMs) while the medium is full. */
  send(f: FrameToSend, timeoutMs?: number): Promise<void>;
  /**
   * A request was sent (true) and its answer is due soon (within `hotUs`, when the sender knows it to be slower
   * than usual), or no answer is awaited any more (false). Optional.
   */
  expectAnswer?(on: boolean, hotUs?: number): void;
  close(): Promise<void>;
}
