/**
 * A connection with a read buffer in front of it, for protocols that must look at bytes before
 * deciding what they are: HTTP heads on both sides of the proxy. Bytes read past a head (a body,
 * a pipelined request) stay in the buffer for whoever reads next.
 *
 * @module
 */

import { type DeadlineSet, readBefore, TIMED_OUT } from "../deadlines.ts";

export { TIMED_OUT };

/** A connection plus the bytes read from it that nobody has consumed yet. */
export class BufferedReader {
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #total = 0;

  constructor(
    readonly conn: Deno.Conn,
    readonly deadlines: DeadlineSet,
    initialSize = 4096,
    first?: Uint8Array,
  ) {
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
   * @returns the bytes added, `null` at end of stream, {@link TIMED_OUT} when `timeoutMs`
   *   passed first, or 0 when the buffer already holds `maxBuffered` bytes.
   */
  async fill(
    maxBuffered: number,
    timeoutMs: number,
    idle = false,
  ): Promise<number | null | typeof TIMED_OUT> {
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
    const n = await readBefore(
      this.conn,
      this.#buf.subarray(this.#end),
      timeoutMs,
      this.deadlines,
      idle,
    );
    if (typeof n === "number") {
      this.#end += n;
      this.#total += n;
    }
    return n;
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
