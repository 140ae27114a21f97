/**
 * Copying bytes both ways between downstream and upstream until both directions are done.
 *
 * Each direction is a read/write loop (docs/deno-runtime.md §4: `pipeTo` breaks half-close and costs
 * three times the memory). An idle connection holds only a small read buffer per direction;
 * while data is flowing, reads borrow larger buffers from shared pools and give them back as
 * soon as a read comes back short, so a thousand held connections do not pin 256 KiB each.
 *
 * @module
 */

import { Deadline, type DeadlineSet } from "./deadlines.ts";
import { closeQuietly, isClosedLocally, isPeerGone } from "./net.ts";

// Timings on the hot paths use Date.now(), a plain V8 call; performance.now() is a runtime op,
// and a connection reads its clock several times per request. Wall-clock steps only nudge
// idle timeouts.

/**
 * How a relayed connection ended; the first cause wins. The client is downstream, the server
 * upstream (records.ts names the sides).
 */
export type RelayEnd =
  | "client-closed"
  | "upstream-closed"
  | "client-reset"
  | "upstream-reset"
  | "idle-timeout"
  | "shutdown";

/** What {@link relay} saw. */
export interface RelayResult {
  /** Bytes from downstream to upstream (after any bytes that were already sent). */
  up: number;
  /** Bytes from upstream to downstream. */
  down: number;
  end: RelayEnd;
}

/** A read already started on the downstream side (by the sniffer), to be taken over. */
export interface PendingRead {
  promise: Promise<number | null>;
  buffer: Uint8Array;
}

/** Options for {@link relay}. */
export interface RelayOptions {
  /** Close both sides after this long without a byte in either direction. */
  idleTimeout: number;
  /** A downstream read the sniffer started and could not cancel (a `silent` client). */
  pending?: PendingRead;
  /** Where the idle deadline is kept. */
  deadlines: DeadlineSet;
  /**
   * Aborting it closes both sides. edgemux itself does not need it: at the end of a graceful
   * stop it closes the client sockets, which ends their relays.
   */
  signal?: AbortSignal;
  /**
   * Aborted when edgemux closes connections at the end of a graceful stop. Only read when a
   * side fails, to log `shutdown` rather than a reset; no listener is kept per connection.
   */
  stopped?: AbortSignal;
  /**
   * When the server's side ends, close the client's at once instead of passing a half-close
   * on. For edgemux's own internal TLS server: once it has closed, nothing the client could
   * still send would be read.
   */
  closeWhenServerEnds?: boolean;
  /** Lets the caller shorten the idle timeout of the running relay. */
  control?: RelayControl;
}

/**
 * A handle on a running {@link relay}: {@link tighten} lowers its idle timeout, for a relay whose
 * other end is known to be finished but whose last bytes may still be on their way.
 */
export class RelayControl {
  #tighten: ((ms: number) => void) | null = null;
  #wanted: number | null = null;

  /** From now on the relay closes after `ms` without a byte (never lengthens it). */
  tighten(ms: number): void {
    this.#wanted = Math.min(ms, this.#wanted ?? ms);
    this.#tighten?.(this.#wanted);
  }

  /** Called by {@link relay} when it starts. */
  attach(tighten: (ms: number) => void): void {
    this.#tighten = tighten;
    if (this.#wanted !== null) tighten(this.#wanted);
  }
}

/**
 * What each direction reads into while it waits. Every read waiting for bytes holds its
 * buffer, so this is what an idle connection keeps per direction (on top of what Deno's runtime
 * costs per socket and per pending read: docs/deno-runtime.md §12). Keystrokes and most small
 * requests fit in one read of this size.
 */
export const IDLE_BUFFER = 512;
/**
 * The read after a full idle-size read: a TLS server's first flight, a small response or a
 * request body's first part fit, so a short burst never touches a {@link BUSY_BUFFER}.
 */
export const WARM_BUFFER = 16 * 1024;
/**
 * What a direction reads into once a burst has filled a {@link WARM_BUFFER}: large, because each
 * read and write costs a runtime op whatever its size (256 KiB moved a single iperf3 stream from
 * 0.7x to 1.2x HAProxy's rate).
 */
export const BUSY_BUFFER = 256 * 1024;
/** A short read at least this large means a stream is still flowing (see nextBuffer). */
export const STREAMING = 8 * 1024;
const NO_BYTES = new Uint8Array(0);

/**
 * The shared buffers above the idle size. A direction borrows one only for a read that follows
 * a full one (more bytes are almost certainly waiting), and gives it back when a read comes back
 * short (the socket was drained), before its next read, which may wait for hours (see
 * nextBuffer for the one exception, a stream that is still flowing).
 *
 * At most `limit` buffers are kept, and {@link BufferPool.trim} (run by a shared timer while the
 * pool is not empty) frees those that no burst needed since the last trim, so a burst of many
 * connections leaves no lasting memory behind.
 */
export class BufferPool {
  readonly #free: Uint8Array[] = [];
  #borrowed = 0;
  #lent = 0;
  /** The fewest free buffers since the last trim: that many were not needed. */
  #lowWater = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly size: number,
    readonly limit: number,
    readonly trimEvery: number,
  ) {}

  /** Buffers currently lent out (each one held by a read in flight or its write). */
  get borrowed(): number {
    return this.#borrowed;
  }

  /** Borrows so far, counted since the process started. */
  get lent(): number {
    return this.#lent;
  }

  /** Buffers kept for reuse. */
  get pooled(): number {
    return this.#free.length;
  }

  borrow(): Uint8Array {
    this.#borrowed++;
    this.#lent++;
    const buf = this.#free.pop();
    if (this.#free.length < this.#lowWater) this.#lowWater = this.#free.length;
    return buf ?? new Uint8Array(this.size);
  }

  giveBack(buf: Uint8Array): void {
    this.#borrowed--;
    if (this.#free.length >= this.limit) return;
    this.#free.push(buf);
    if (this.#timer === undefined && this.trimEvery > 0) {
      this.#timer = setInterval(() => this.trim(), this.trimEvery);
      // The pool must not keep a finished program (or a test) alive.
      Deno.unrefTimer(this.#timer as unknown as number);
    }
  }

  /**
   * Frees the buffers that no borrow needed since the last trim (the fewest that were free at any
   * moment since), so a buffer outlives its last use by two trims at most; stops the timer once
   * the pool is empty.
   */
  trim(): void {
    this.#free.length -= Math.min(this.#lowWater, this.#free.length);
    this.#lowWater = this.#free.length;
    if (this.#free.length === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * The process's pools: 1 MiB of warm buffers (a thousand clients whose first flights arrive at
 * once reuse a few dozen) and 4 MiB of busy ones (eight bulk streams both ways), trimmed every 5 s.
 * Measured with scripts/held_memory.ts: reading first flights straight into 256 KiB buffers left
 * about 30 KB of RSS per held connection behind at N = 1,000 (a pool of 8 busy buffers), pooled or
 * freed alike, since the allocator keeps what is freed.
 */
export const pools: { warm: BufferPool; busy: BufferPool } = {
  warm: new BufferPool(WARM_BUFFER, 64, 5_000),
  busy: new BufferPool(BUSY_BUFFER, 16, 5_000),
};

/**
 * Chooses what the next read of a direction goes into, from what the last read brought (`n` of
 * `size` bytes, into `lent` or the idle buffer):
 * - a full read: more is almost certainly waiting, so the next size up;
 * - a short read of at least {@link STREAMING} bytes: a stream is flowing, paced by its producer;
 *   a warm buffer takes the next read in one op (reading each such cycle through the idle buffer
 *   first cost a fifth more CPU per GiB on a passthrough download that curl paced);
 * - a smaller one: the exchange is over, and the next read, which may wait for hours, takes the
 *   idle buffer.
 *
 * So a held connection keeps its idle buffer, or a warm one after a bulk stream ended on a read of
 * {@link STREAMING} bytes or more; never a busy one unless the socket filled it.
 */
function nextBuffer(lent: Uint8Array | null, n: number, size: number): Uint8Array | null {
  if (n === size) {
    if (lent === null) return pools.warm.borrow();
    if (lent.length !== WARM_BUFFER) return lent;
    pools.warm.giveBack(lent);
    return pools.busy.borrow();
  }
  if (n >= STREAMING) {
    if (lent !== null && lent.length === WARM_BUFFER) return lent;
    if (lent !== null) pools.busy.giveBack(lent);
    return pools.warm.borrow();
  }
  if (lent !== null) giveBack(lent);
  return null;
}

function giveBack(buf: Uint8Array): void {
  (buf.length === WARM_BUFFER ? pools.warm : pools.busy).giveBack(buf);
}

/**
 * Relays bytes between `client` and `server` until both directions have ended, then closes
 * both. End of stream in one direction is passed on as a half-close (`closeWrite`) and the other
 * direction keeps going; a reset, the idle timeout or the abort signal closes both at once.
 * Never throws: how it ended is in the result.
 */
export function relay(
  client: Deno.Conn,
  server: Deno.Conn,
  opts: RelayOptions,
): Promise<RelayResult> {
  return new Promise((resolve) => new Relay(client, server, opts, resolve).start(opts));
}

type Side = "client" | "server";

/**
 * One relay's state. The two directions are chains of callbacks on the read and write promises
 * rather than async functions: a held connection waits in a read, and an async function waiting
 * there keeps its whole frame, a generator, and a resolve/reject closure pair per await (three
 * frames and a Promise.all per relay, measured at about 2 KB of JS heap per connection).
 */
class Relay {
  end: RelayEnd | null = null;
  closed = false;
  /** One deadline entry per relay, moved forward on every read: no timer object per connection. */
  readonly idle: Deadline;
  idleTimeout: number;
  readonly #client: Deno.Conn;
  readonly #server: Deno.Conn;
  readonly #deadlines: DeadlineSet;
  readonly #signal: AbortSignal | undefined;
  readonly #stopped: AbortSignal | undefined;
  readonly #resolve: (r: RelayResult) => void;
  readonly #up: Direction;
  readonly #down: Direction;
  #running = 2;
  #onAbort: (() => void) | null = null;

  constructor(
    client: Deno.Conn,
    server: Deno.Conn,
    opts: RelayOptions,
    resolve: (r: RelayResult) => void,
  ) {
    this.#client = client;
    this.#server = server;
    this.#deadlines = opts.deadlines;
    this.#signal = opts.signal;
    this.#stopped = opts.stopped;
    this.#resolve = resolve;
    this.idleTimeout = opts.idleTimeout;
    this.idle = new Deadline(() => this.closeBoth("idle-timeout"));
    this.#up = new Direction(this, client, server, "client", false);
    this.#down = new Direction(this, server, client, "server", opts.closeWhenServerEnds ?? false);
  }

  start(opts: RelayOptions): void {
    this.#deadlines.arm(this.idle, this.idleTimeout);
    opts.control?.attach((ms) => {
      if (ms >= this.idleTimeout || this.closed) return;
      this.idleTimeout = ms;
      // Moving the deadline earlier: re-arm it, since the tick only looks at armed entries.
      this.#deadlines.arm(this.idle, Math.max(0, Math.min(this.idle.at - Date.now(), ms)));
    });
    if (this.#signal !== undefined) {
      const onAbort = () => this.closeBoth("shutdown");
      this.#onAbort = onAbort;
      if (this.#signal.aborted) onAbort();
      this.#signal.addEventListener("abort", onAbort, { once: true });
    }
    this.#up.start(opts.pending);
    this.#down.start(undefined);
  }

  closeBoth(end: RelayEnd): void {
    this.end ??= this.#stopped?.aborted && end !== "client-closed" && end !== "upstream-closed"
      ? "shutdown"
      : end;
    if (this.closed) return;
    this.closed = true;
    closeQuietly(this.#client);
    closeQuietly(this.#server);
  }

  /** Called once by each direction when it has finished. */
  directionDone(): void {
    if (--this.#running > 0) return;
    this.#deadlines.disarm(this.idle);
    if (this.#onAbort !== null) this.#signal?.removeEventListener("abort", this.#onAbort);
    this.closeBoth("client-closed");
    this.#resolve({ up: this.#up.total, down: this.#down.total, end: this.end! });
  }
}

/** Copies src → dst until src ends or something fails, then tells its relay. */
class Direction {
  /** Bytes copied so far. */
  total = 0;
  #idle: Uint8Array | null = null;
  /** The pooled buffer the next read goes into, or null for the idle buffer. */
  #lent: Uint8Array | null = null;
  #buf: Uint8Array = NO_BYTES;
  #n = 0;
  #offset = 0;
  #failedSide: Side;
  readonly #relay: Relay;
  readonly #src: Deno.Conn;
  readonly #dst: Deno.Conn;
  readonly #srcSide: Side;
  readonly #closeWhenServerEnds: boolean;
  // Made once per direction and reused by every read and write.
  readonly #onRead = (n: number | null) => this.#read(n);
  readonly #onWritten = (w: number) => this.#written(w);
  readonly #onError = () => this.#failed();

  constructor(
    relay: Relay,
    src: Deno.Conn,
    dst: Deno.Conn,
    srcSide: Side,
    closeWhenServerEnds: boolean,
  ) {
    this.#relay = relay;
    this.#src = src;
    this.#dst = dst;
    this.#srcSide = srcSide;
    this.#failedSide = srcSide;
    this.#closeWhenServerEnds = closeWhenServerEnds;
  }

  start(pending: PendingRead | undefined): void {
    if (pending === undefined) {
      this.#next();
      return;
    }
    this.#buf = pending.buffer;
    pending.promise.then(this.#onRead, this.#onError);
  }

  #next(): void {
    this.#failedSide = this.#srcSide;
    this.#buf = this.#lent ?? (this.#idle ??= new Uint8Array(IDLE_BUFFER));
    let read: Promise<number | null>;
    try {
      read = this.#src.read(this.#buf);
    } catch {
      this.#failed();
      return;
    }
    read.then(this.#onRead, this.#onError);
  }

  #read(n: number | null): void {
    if (n === null) {
      this.#ended();
      return;
    }
    this.#relay.idle.at = Date.now() + this.#relay.idleTimeout;
    this.#failedSide = this.#srcSide === "client" ? "server" : "client";
    this.#n = n;
    this.#offset = 0;
    this.#write();
  }

  #write(): void {
    let wrote: Promise<number>;
    try {
      wrote = this.#dst.write(this.#buf.subarray(this.#offset, this.#n));
    } catch {
      this.#failed();
      return;
    }
    wrote.then(this.#onWritten, this.#onError);
  }

  #written(w: number): void {
    this.#offset += w;
    if (this.#offset < this.#n) {
      this.#write();
      return;
    }
    this.total += this.#n;
    this.#lent = nextBuffer(this.#lent, this.#n, this.#buf.length);
    this.#next();
  }

  /**
   * A read or write failed. A local close (timeout, shutdown, the other direction failing) has
   * set the cause already; otherwise the side that failed reset the connection.
   */
  #failed(): void {
    this.#relay.closeBoth(this.#failedSide === "client" ? "client-reset" : "upstream-reset");
    this.#finish();
  }

  /** End of stream from src: pass the half-close on and let the other direction finish. */
  #ended(): void {
    const relay = this.#relay;
    relay.end ??= this.#srcSide === "client" ? "client-closed" : "upstream-closed";
    if (this.#srcSide === "server" && this.#closeWhenServerEnds) {
      relay.closeBoth("upstream-closed");
      this.#finish();
      return;
    }
    if (relay.closed) {
      this.#finish();
      return;
    }
    const dstSide = this.#srcSide === "client" ? "server" : "client";
    const afterError = (e: unknown) => {
      if (!isClosedLocally(e) && !isPeerGone(e)) {
        relay.closeBoth(dstSide === "client" ? "client-reset" : "upstream-reset");
      }
      this.#finish();
    };
    let closed: Promise<void>;
    try {
      closed = this.#dst.closeWrite();
    } catch (e) {
      afterError(e);
      return;
    }
    closed.then(() => this.#finish(), afterError);
  }

  #finish(): void {
    if (this.#lent !== null) giveBack(this.#lent);
    this.#lent = null;
    this.#idle = null;
    this.#buf = NO_BYTES;
    this.#relay.directionDone();
  }
}
