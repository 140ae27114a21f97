/**
 * Copying bytes both ways between downstream and upstream until both directions are done.
 *
 * Each direction is a read/write loop (docs/deno-runtime.md §4: `pipeTo` breaks half-close and costs
 * three times the memory). An idle connection holds only a small read buffer per direction;
 * while data is flowing, reads borrow a large buffer from a shared pool and give it back as soon
 * as a read comes back short, so a thousand idle SSH sessions do not pin 128 KiB each.
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
 * What each direction of an idle connection holds while it waits. Small, because a thousand
 * idle SSH sessions would otherwise pin megabytes; keystrokes and most small requests fit in one
 * read, and anything larger continues in the big buffer.
 */
const IDLE_BUFFER = 512;
/**
 * What a direction reads into while data flows: large, because each read and write costs a
 * runtime op whatever its size (256 KiB moved a single iperf3 stream from 0.7x to 1.2x
 * HAProxy's rate). Borrowed from a small pool only while a burst lasts.
 */
const BUSY_BUFFER = 256 * 1024;
const POOL_LIMIT = 64;
const pool: Uint8Array[] = [];

function borrow(): Uint8Array {
  return pool.pop() ?? new Uint8Array(BUSY_BUFFER);
}

function giveBack(buf: Uint8Array): void {
  if (pool.length < POOL_LIMIT) pool.push(buf);
}

/**
 * Relays bytes between `client` and `server` until both directions have ended, then closes
 * both. End of stream in one direction is passed on as a half-close (`closeWrite`) and the other
 * direction keeps going; a reset, the idle timeout or the abort signal closes both at once.
 * Never throws: how it ended is in the result.
 */
export async function relay(
  client: Deno.Conn,
  server: Deno.Conn,
  opts: RelayOptions,
): Promise<RelayResult> {
  const state: RelayState = {
    end: null,
    closed: false,
    // One deadline entry per relay, moved forward on every read: no timer object per connection.
    idle: new Deadline(() => closeBoth("idle-timeout")),
    idleTimeout: opts.idleTimeout,
  };
  const closeBoth = (end: RelayEnd) => {
    state.end ??= opts.stopped?.aborted && end !== "client-closed" && end !== "upstream-closed"
      ? "shutdown"
      : end;
    if (state.closed) return;
    state.closed = true;
    closeQuietly(client);
    closeQuietly(server);
  };
  opts.deadlines.arm(state.idle, opts.idleTimeout);
  opts.control?.attach((ms) => {
    if (ms >= state.idleTimeout || state.closed) return;
    state.idleTimeout = ms;
    // Moving the deadline earlier: re-arm it, since the tick only looks at armed entries.
    opts.deadlines.arm(state.idle, Math.max(0, Math.min(state.idle.at - Date.now(), ms)));
  });
  const onAbort = () => closeBoth("shutdown");
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  const [up, down] = await Promise.all([
    pump(client, server, "client", state, closeBoth, false, opts.pending),
    pump(server, client, "server", state, closeBoth, opts.closeWhenServerEnds ?? false),
  ]);
  opts.deadlines.disarm(state.idle);
  opts.signal?.removeEventListener("abort", onAbort);
  closeBoth("client-closed");
  return { up, down, end: state.end! };
}

interface RelayState {
  end: RelayEnd | null;
  closed: boolean;
  idle: Deadline;
  idleTimeout: number;
}

/** Copies src → dst until src ends or something fails; returns the bytes copied. */
async function pump(
  src: Deno.Conn,
  dst: Deno.Conn,
  srcSide: "client" | "server",
  state: RelayState,
  closeBoth: (end: RelayEnd) => void,
  closeWhenServerEnds: boolean,
  pending?: PendingRead,
): Promise<number> {
  const dstSide = srcSide === "client" ? "server" : "client";
  let total = 0;
  let small: Uint8Array | null = null;
  let big: Uint8Array | null = null;
  let failedSide = srcSide;
  try {
    for (;;) {
      let buf: Uint8Array;
      let n: number | null;
      failedSide = srcSide;
      if (pending !== undefined) {
        buf = pending.buffer;
        n = await pending.promise;
        pending = undefined;
      } else {
        buf = big ?? (small ??= new Uint8Array(IDLE_BUFFER));
        n = await src.read(buf);
      }
      if (n === null) break;
      state.idle.at = Date.now() + state.idleTimeout;
      failedSide = dstSide;
      let offset = 0;
      while (offset < n) offset += await dst.write(buf.subarray(offset, n));
      total += n;
      // A full read means more is probably waiting: switch to the big buffer. Only a read that
      // would have fitted the small one means the flow has gone quiet: give the big buffer back
      // before the next, possibly long, wait. (A bulk stream's reads often come back short of
      // 64 KiB without the stream slowing down; flipping back on those would cost throughput.)
      if (big === null) {
        if (n === buf.length) big = borrow();
      } else if (n <= IDLE_BUFFER) {
        giveBack(big);
        big = null;
      }
    }
  } catch {
    // A local close (timeout, shutdown, the other direction failing) has set the cause
    // already; otherwise the side that failed reset the connection.
    closeBoth(failedSide === "client" ? "client-reset" : "upstream-reset");
    return total;
  } finally {
    if (big !== null) giveBack(big);
  }
  // End of stream from src: pass the half-close on and let the other direction finish.
  state.end ??= srcSide === "client" ? "client-closed" : "upstream-closed";
  if (srcSide === "server" && closeWhenServerEnds) {
    closeBoth("upstream-closed");
    return total;
  }
  if (!state.closed) {
    try {
      await dst.closeWrite();
    } catch (e) {
      if (!isClosedLocally(e) && !isPeerGone(e)) {
        closeBoth(dstSide === "client" ? "client-reset" : "upstream-reset");
      }
    }
  }
  return total;
}
