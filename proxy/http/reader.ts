/**
 * A connection with a read buffer in front of it, for protocols that must look at bytes before
 * deciding what they are: HTTP heads on both sides of the proxy. Bytes read past a head (a body,
 * a pipelined request) stay in the buffer for whoever reads next.
 *
 * @module
 */

import { Deadline, type DeadlineSet, TIMED_OUT } from "../deadlines.ts";
import { closeQuietly } from "../net.ts";

export { TIMED_OUT };

/** A connection plus the bytes read from it that nobody has consumed yet. */
export class BufferedReader {
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #total = 0;
  /** One deadline for every wait of this connection; on expiry it closes the connection. */
  readonly #deadline: Deadline;
  /** What an expiry does beyond closing (answer 408 first, for a half-sent request head). */
  #beforeClose: (() => Promise<void>) | null = null;
  /**
   * A read started while the connection sat idle (see {@link watchIdle}) and not yet taken over:
   * Deno cannot cancel a read, so the next `fill` waits for this one instead of starting its own.
   */
  #pending: Promise<number | null | typeof TIMED_OUT> | null = null;

  constructor(
    readonly conn: Deno.Conn,
    readonly deadlines: DeadlineSet,
    initialSize = 4096,
    first?: Uint8Array,
  ) {
    this.#deadline = new Deadline(() => {
      const last = this.#beforeClose;
      if (last === null) closeQuietly(this.conn);
      else last().finally(() => closeQuietly(this.conn));
    });
    const size = Math.max(initialSize, first?.length ?? 0);
    this.#buf = new Uint8Array(size);
    if (first) {
      this.#buf.set(first);
      this.#end = first.length;
      this.#total = first.length;
    }
  }

  /** Every byte received on the connection so far (including `first`). */
  get totalRead(): number {
    return this.#total;
  }

  /** Bytes buffered and not yet consumed. */
  get available(): number {
    return this.#end - this.#start;
  }

  /** The unconsumed bytes; valid until the next `fill` or `consume`. */
  view(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** Marks `n` buffered bytes as used. */
  consume(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Takes every buffered byte (a copy), leaving the buffer empty. */
  drain(): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    return out;
  }

  /**
   * Reads more bytes after those buffered, growing the buffer up to `maxBuffered` bytes.
   *
   * @param idle The wait is an idle keep-alive wait, which a graceful stop ends at once.
   * @param beforeClose On expiry, run this (it may write a last response) before closing.
   * @returns the bytes added, `null` at end of stream, {@link TIMED_OUT} when `timeoutMs`
   *   passed first (the connection is then closed), or 0 when the buffer already holds
   *   `maxBuffered` bytes.
   */
  async fill(
    maxBuffered: number,
    timeoutMs: number,
    idle = false,
    beforeClose: (() => Promise<void>) | null = null,
  ): Promise<number | null | typeof TIMED_OUT> {
    if (this.#deadline.expired) return TIMED_OUT;
    const pending = this.#pending;
    if (pending !== null) {
      // The idle read is still out: it now waits under this call's deadline.
      this.#pending = null;
      this.#beforeClose = beforeClose;
      this.deadlines.arm(this.#deadline, timeoutMs, idle);
      return await pending;
    }
    if (this.#end === this.#buf.length) {
      const used = this.#end - this.#start;
      if (this.#start > 0 && used < this.#buf.length / 2) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        if (this.#buf.length >= maxBuffered) return 0;
        const bigger = new Uint8Array(Math.min(this.#buf.length * 2, maxBuffered));
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = bigger;
      }
      this.#end = used;
      this.#start = 0;
    }
    this.#beforeClose = beforeClose;
    this.deadlines.arm(this.#deadline, timeoutMs, idle);
    let n: number | null;
    try {
      n = await this.conn.read(this.#buf.subarray(this.#end));
    } catch (e) {
      if (this.#deadline.expired) return TIMED_OUT;
      throw e;
    } finally {
      this.deadlines.disarm(this.#deadline);
    }
    if (n === null) return this.#deadline.expired ? TIMED_OUT : null;
    this.#end += n;
    this.#total += n;
    return n;
  }

  /**
   * Watches a connection that sits idle between requests: a read is started at once, and
   * `onWake` runs if it ends (bytes, end of stream, an error or `timeoutMs` passing) before
   * {@link claim} is called. An idle upstream connection must stay silent, so any of these means
   * it cannot carry another request. The read stays in flight after `claim`; the next `fill`
   * takes it over.
   */
  watchIdle(timeoutMs: number, onWake: () => void): void {
    const watching = this.fill(this.#buf.length, timeoutMs, true).catch(() => null);
    this.#pending = watching;
    watching.then(() => {
      if (this.#pending === watching) {
        this.#pending = null;
        onWake();
      }
    });
  }

  /**
   * Ends the idle watch: the connection is about to carry a request, so its idle deadline stops
   * and whatever the watching read brings belongs to that request. False when the watch has
   * already woken (the caller must not use the connection).
   */
  claim(): boolean {
    // An expired watch has closed the connection, even if its read has not reported back yet.
    if (this.#deadline.expired) return false;
    if (this.#pending === null) return this.available === 0;
    this.deadlines.disarm(this.#deadline);
    return true;
  }

  /**
   * Reads at most `max` bytes, from the buffer first, else from the connection. Returns a view
   * valid until the next call, or null at end of stream.
   */
  async readChunk(max: number, timeoutMs: number): Promise<Uint8Array | null | typeof TIMED_OUT> {
    if (this.available === 0) {
      const n = await this.fill(Math.max(this.#buf.length, 16 * 1024), timeoutMs);
      if (n === null || n === TIMED_OUT) return n;
    }
    const take = Math.min(max, this.available);
    const out = this.#buf.subarray(this.#start, this.#start + take);
    this.consume(take);
    return out;
  }
}
