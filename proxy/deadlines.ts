/**
 * Deadlines for many connections with one timer. A timer per read (and a Promise.race against
 * it) cost a tenth of the CPU of a small keep-alive request in profiles, and a Node-style timer
 * object per idle connection cost memory; here each connection owns one small entry whose time
 * it moves forward as it reads, and one interval tick fires the entries that are due.
 * A deadline fires at its time or up to one tick (100 ms) later, which suits timeouts of
 * seconds.
 *
 * An expired read is ended the only way Deno allows: by closing the connection, whose pending
 * read then fails. The owner of the entry tells the two apart with `expired`.
 *
 * @module
 */

/** One connection's deadline. Reuse it for every wait of that connection. */
export class Deadline {
  /** When it fires (Date.now() milliseconds); Infinity while disarmed. */
  at = Infinity;
  /** Set once it has fired. */
  expired = false;
  /** An idle keep-alive wait, which a graceful stop ends at once. */
  idle = false;

  /** @param onExpire Runs once, when the deadline passes while armed. */
  constructor(public onExpire: () => void) {}
}

const TICK = 100;

/** The pending deadlines of one running proxy. */
export class DeadlineSet {
  readonly #armed = new Set<Deadline>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;

  /** Arms `d` to fire `ms` from now (moving it if it was armed already). */
  arm(d: Deadline, ms: number, idle = false): void {
    d.at = Date.now() + ms;
    d.idle = idle;
    if (idle && this.#stopping) {
      // Stopping already: an idle wait ends at once.
      this.#fire(d);
      return;
    }
    this.#armed.add(d);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), TICK);
      // The interval must not keep a finished program (or a test) alive on its own.
      Deno.unrefTimer(this.#timer as unknown as number);
    }
  }

  /** Stops `d` from firing (until armed again). */
  disarm(d: Deadline): void {
    d.at = Infinity;
    this.#armed.delete(d);
  }

  /** A graceful stop began: idle waits end now, and new ones end at once. */
  stopIdle(): void {
    this.#stopping = true;
    for (const d of [...this.#armed]) if (d.idle) this.#fire(d);
  }

  #fire(d: Deadline): void {
    this.#armed.delete(d);
    if (d.expired) return;
    d.expired = true;
    d.onExpire();
  }

  #tick(): void {
    if (this.#armed.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = Date.now();
    for (const d of this.#armed) if (d.at <= now) this.#fire(d);
  }
}

/** Returned by a read whose deadline passed first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");
