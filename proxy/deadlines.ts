/**
 * Read deadlines for many connections with one timer. A timer per read (and a Promise.race
 * against it) cost about a tenth of the CPU of a small keep-alive request in profiles; here a
 * read registers an entry in a set, and one interval tick fires the entries that are due.
 * A deadline fires at its time or up to one tick (100 ms) later, which suits timeouts of
 * seconds.
 *
 * @module
 */

/** A registered deadline. */
export interface Deadline {
  readonly at: number;
  /** Runs once when the deadline passes (or at a graceful stop, for idle waits). */
  readonly fire: () => void;
  /** An idle keep-alive wait: a graceful stop fires it at once. */
  readonly idle: boolean;
}

const TICK = 100;

/** The pending deadlines of one running proxy. */
export class DeadlineSet {
  readonly #entries = new Set<Deadline>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #now = Date.now();
  #stopping = false;

  /** Milliseconds, from Date.now(): a plain V8 call, unlike performance.now(), a runtime op. */
  get now(): number {
    return Date.now();
  }

  /** Registers `fire` to run `ms` from now. */
  add(ms: number, fire: () => void, idle = false): Deadline {
    if (idle && this.#stopping) {
      // Stopping already: an idle wait ends at once.
      queueMicrotask(fire);
    }
    const d: Deadline = { at: this.now + ms, fire, idle };
    this.#entries.add(d);
    if (this.#timer === undefined) {
      this.#now = Date.now();
      this.#timer = setInterval(() => this.#tick(), TICK);
      // The interval must not keep a finished program (or a test) alive on its own.
      Deno.unrefTimer(this.#timer as unknown as number);
    }
    return d;
  }

  cancel(d: Deadline): void {
    this.#entries.delete(d);
  }

  /** A graceful stop began: idle waits end now, and new ones end at once. */
  stopIdle(): void {
    this.#stopping = true;
    for (const d of [...this.#entries]) {
      if (!d.idle) continue;
      this.#entries.delete(d);
      d.fire();
    }
  }

  #tick(): void {
    this.#now = Date.now();
    if (this.#entries.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    for (const d of this.#entries) {
      if (d.at > this.#now) continue;
      this.#entries.delete(d);
      d.fire();
    }
  }
}

/** Returned by {@link readBefore} when the deadline passed first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * Reads into `buf`, giving up after `ms` (or at once at a graceful stop when `idle`). Deno
 * reads cannot be cancelled, so on a timeout the read stays pending (its outcome is ignored)
 * and the caller decides what to do with the connection.
 */
export async function readBefore(
  conn: Deno.Conn,
  buf: Uint8Array,
  ms: number,
  deadlines: DeadlineSet,
  idle = false,
): Promise<number | null | typeof TIMED_OUT> {
  let expire!: () => void;
  const expired = new Promise<typeof TIMED_OUT>((resolve) => expire = () => resolve(TIMED_OUT));
  const d = deadlines.add(ms, expire, idle);
  const read = conn.read(buf);
  try {
    const result = await Promise.race([read, expired]);
    if (result === TIMED_OUT) read.catch(() => {});
    return result;
  } finally {
    deadlines.cancel(d);
  }
}
