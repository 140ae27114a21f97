/**
 * The only I/O around the classifier: read the first bytes of a connection, under a deadline
 * and a byte cap, until {@link classify} stops saying "need more". Deno cannot peek, so the
 * bytes read are returned and must be written upstream before anything else.
 *
 * @module
 */

import { maxHelloWireBytes } from "./client_hello.ts";
import { type Classification, classify } from "./classify.ts";
import { Deadline, type DeadlineSet } from "../deadlines.ts";
import { closeQuietly } from "../net.ts";
import type { PendingRead } from "../relay.ts";

/** A classifier's final verdict: anything but "need more". */
export type Verdict = Exclude<Classification, { kind: "incomplete" }>;

/** What the sniffer found. `bytes` is everything read, to be replayed upstream first. */
export type SniffResult =
  | { kind: "classified"; verdict: Verdict; bytes: Uint8Array }
  /** No byte arrived within `silentAfter`; the read still in flight is handed over. */
  | { kind: "silent"; pending: PendingRead }
  /** The client closed (or reset) before it could be classified. */
  | { kind: "closed"; bytes: Uint8Array }
  /** The deadline passed with bytes that still could not be classified (a stalled client). */
  | { kind: "timeout"; bytes: Uint8Array }
  /** More bytes than any hello may take, still without a verdict. */
  | { kind: "too-large"; bytes: Uint8Array };

/** Limits for one sniff. */
export interface SniffOptions {
  timeout: number;
  /** Treat a client that sends nothing for this long as `silent`; null to keep waiting. */
  silentAfter: number | null;
  maxHelloSize: number;
}

/** Most clients' first flight fits here; a browser's post-quantum hello needs a second read. */
const INITIAL_BUFFER = 1024;
const SILENT = Symbol("silent");

/**
 * Reads from `conn` until the first bytes can be classified. Never throws; a read error counts
 * as `closed`. On `too-large` the connection is left open for the caller to answer (an alert)
 * and close; on `timeout` it has been closed already (a read can only be ended by closing).
 */
export async function sniff(
  conn: Deno.Conn,
  opts: SniffOptions,
  deadlines: DeadlineSet,
): Promise<SniffResult> {
  const cap = maxHelloWireBytes(opts.maxHelloSize);
  let buf = new Uint8Array(INITIAL_BUFFER);
  let length = 0;
  const deadline = new Deadline(() => closeQuietly(conn));
  deadlines.arm(deadline, opts.timeout);
  try {
    for (;;) {
      if (length === buf.length) {
        if (buf.length >= cap) return { kind: "too-large", bytes: buf.subarray(0, length) };
        const bigger = new Uint8Array(Math.min(buf.length * 4, cap));
        bigger.set(buf);
        buf = bigger;
      }
      const target = buf.subarray(length);
      const read = conn.read(target);
      let n: number | null | typeof SILENT;
      if (length === 0 && opts.silentAfter !== null) {
        // Silence must not close the connection (it is handed over, read pending), so this
        // one wait races a timer of its own. Only listeners with a silent route get here.
        let silenceTimer: ReturnType<typeof setTimeout> | undefined;
        const silence = new Promise<typeof SILENT>((resolve) => {
          silenceTimer = setTimeout(() => resolve(SILENT), opts.silentAfter!);
        });
        try {
          n = await Promise.race([read, silence]);
        } finally {
          clearTimeout(silenceTimer);
        }
        if (n === SILENT) return { kind: "silent", pending: { promise: read, buffer: target } };
      } else {
        n = await read;
      }
      if (n === null) {
        return { kind: deadline.expired ? "timeout" : "closed", bytes: buf.subarray(0, length) };
      }
      length += n;
      const verdict = classify(buf.subarray(0, length), opts.maxHelloSize);
      if (verdict.kind !== "incomplete") {
        // A copy of just the bytes read: they are kept until the connection ends (they are
        // replayed upstream first), and the read buffer may be four times their size.
        return { kind: "classified", verdict, bytes: buf.slice(0, length) };
      }
    }
  } catch {
    return { kind: deadline.expired ? "timeout" : "closed", bytes: buf.subarray(0, length) };
  } finally {
    deadlines.disarm(deadline);
  }
}
