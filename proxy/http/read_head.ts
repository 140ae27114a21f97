/**
 * Reading one request head from a client, with the two HTTP timeouts: a keep-alive connection
 * may sit idle between requests for `keepaliveTimeout`, and once a request's first byte has
 * arrived its whole head must follow within `requestHeadTimeout` (a slowloris client cannot hold
 * the connection by trickling header bytes). A connection's first request has no keep-alive wait:
 * from the moment the connection is ready, its whole head must arrive within `requestHeadTimeout`
 * (as nginx's `client_header_timeout` and HAProxy's `timeout http-request` do), so a client that
 * connects and never sends a request holds nothing for longer than that.
 *
 * @module
 */

import type { HttpConfig } from "../../config/types.ts";
import { parseRequestHead, type RequestHead } from "./wire/head.ts";
import { simpleResponse } from "./wire/respond.ts";
import { writeAll } from "../net.ts";
import { type BufferedReader, TIMED_OUT } from "./reader.ts";

/** What {@link readRequestHead} answers a half-sent head with before it closes. */
export const REQUEST_TIMEOUT: Uint8Array = simpleResponse(408, { close: true });

async function answer408(reader: BufferedReader): Promise<void> {
  try {
    await writeAll(reader.conn, REQUEST_TIMEOUT);
  } catch {
    // The client is gone as well.
  }
}

/** The outcome of {@link readRequestHead}. */
export type HeadRead =
  | { kind: "head"; head: RequestHead }
  /** Refuse with `status` and close. */
  | { kind: "error"; status: 400 | 414 | 431 | 501 | 505; reason: string }
  /**
   * Time ran out, and the connection is closed: mid-head (`partial`; it was answered 408
   * first) or while idle (closed quietly).
   */
  | { kind: "timeout"; partial: boolean }
  /** The client closed or reset: mid-head (`partial`) or between requests. */
  | { kind: "closed"; partial: boolean }
  /** A graceful stop asked idle connections to close. */
  | { kind: "stopping" };

/**
 * Reads until a whole request head is buffered in `reader` (it is consumed from the buffer;
 * body bytes stay there).
 *
 * @param softStop Aborted when edgemux is stopping: an idle wait ends at once.
 * @param first The connection's first request: `requestHeadTimeout` counts from now, even
 *   before its first byte (a timeout with nothing received closes quietly, without a 408).
 */
export async function readRequestHead(
  reader: BufferedReader,
  http: HttpConfig,
  softStop: AbortSignal,
  first = false,
): Promise<HeadRead> {
  const limits = { maxHeadBytes: http.maxHeadSize, maxHeaders: http.maxHeaders };
  let headStarted = reader.available > 0 || first ? Date.now() : 0;
  for (;;) {
    if (reader.available > 0) {
      const parsed = parseRequestHead(reader.view(), limits);
      if (parsed.kind === "head") {
        reader.consume(parsed.head.end);
        return parsed;
      }
      if (parsed.kind === "error") return parsed;
    }
    const idle = reader.available === 0;
    const wait = idle && !first
      ? http.keepaliveTimeout
      : Math.max(0, http.requestHeadTimeout - (Date.now() - headStarted));
    let n;
    try {
      // Only an idle connection gives way to a graceful stop; a request in flight finishes.
      // A client that stops in the middle of a head is told why before it is closed.
      n = await reader.fill(
        http.maxHeadSize + 1,
        wait,
        idle,
        idle ? null : () => answer408(reader),
      );
    } catch {
      return { kind: "closed", partial: !idle };
    }
    if (n === TIMED_OUT) {
      if (idle && softStop.aborted) return { kind: "stopping" };
      return { kind: "timeout", partial: !idle };
    }
    if (n === null) return { kind: "closed", partial: !idle };
    if (idle && !first) headStarted = Date.now();
  }
}
