/**
 * Hands one HTTP/1.1 request to a backend and streams the answer back, then closes. Used for
 * the rare requests a plain-HTTP listener passes on (ACME http-01 challenges), where one
 * request per connection costs nothing and keeps the code free of response parsing.
 *
 * @module
 */

import { ChunkedScanner } from "./chunked.ts";
import type { RequestHead } from "./head.ts";
import { simpleResponse } from "./respond.ts";
import { upstreamRequestHead } from "./upstream_head.ts";
import { closeQuietly, type PeerAddress, readWithin, TIMED_OUT, writeAll } from "../net.ts";
import { type BackendState, connectUpstream } from "../upstream.ts";

/** What happened to the forwarded request, for the access record. */
export interface ForwardOnceResult {
  server: string | null;
  /** Body bytes read from the client beyond those already counted. */
  up: number;
  down: number;
  end: string;
  detail: string | null;
}

/**
 * Forwards `head` (whose bytes, and perhaps some body bytes, are in `buffered`) to `backend`
 * with `connection: close`, copies the body per its framing, then copies the response to the
 * client until the backend closes.
 */
export async function forwardOneRequest(
  conn: Deno.Conn,
  buffered: Uint8Array,
  head: RequestHead,
  backend: BackendState,
  client: PeerAddress,
  opts: { idleTimeout: number; signal: AbortSignal },
): Promise<ForwardOnceResult> {
  const result: ForwardOnceResult = { server: null, up: 0, down: 0, end: "", detail: null };
  const connected = await connectUpstream(backend, opts.signal);
  if (!connected.ok) {
    const response = simpleResponse(connected.failure === "upstream-timeout" ? 504 : 502, {
      close: true,
    });
    await writeAll(conn, response);
    result.down = response.length;
    result.server = connected.server?.label ?? null;
    result.end = connected.failure;
    result.detail = connected.detail;
    return result;
  }
  const upstream = connected.conn;
  result.server = connected.server.label;
  try {
    const upHead = upstreamRequestHead(
      head,
      { clientIp: client.ip, proto: "http", trusted: false },
      [
        ["connection", "close"],
      ],
    );
    await writeAll(upstream, upHead);
    const bodyOk = await copyRequestBody(
      conn,
      upstream,
      buffered.subarray(head.end),
      head,
      result,
      opts,
    );
    if (!bodyOk) return result;
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await readWithin(upstream, buf, opts.idleTimeout);
      if (n === TIMED_OUT) {
        result.end = "idle-timeout";
        return result;
      }
      if (n === null) break;
      await writeAll(conn, buf.subarray(0, n));
      result.down += n;
    }
    result.end = "server-closed";
    return result;
  } catch (e) {
    result.end = "server-reset";
    result.detail = e instanceof Error ? e.message : String(e);
    return result;
  } finally {
    closeQuietly(upstream);
  }
}

/** Copies the request body to the backend; false (with `result.end` set) if it fails. */
async function copyRequestBody(
  conn: Deno.Conn,
  upstream: Deno.Conn,
  already: Uint8Array,
  head: RequestHead,
  result: ForwardOnceResult,
  opts: { idleTimeout: number },
): Promise<boolean> {
  if (head.body.kind === "none") return true;
  const buf = new Uint8Array(16 * 1024);
  if (head.body.kind === "length") {
    let left = head.body.length;
    const first = already.subarray(0, Math.min(left, already.length));
    await writeAll(upstream, first);
    left -= first.length;
    while (left > 0) {
      const n = await readWithin(
        conn,
        buf.subarray(0, Math.min(left, buf.length)),
        opts.idleTimeout,
      );
      if (n === TIMED_OUT || n === null) {
        result.end = n === null ? "client-closed" : "request-timeout";
        result.detail = "request body cut short";
        return false;
      }
      await writeAll(upstream, buf.subarray(0, n));
      left -= n;
      result.up += n;
    }
    return true;
  }
  const scanner = new ChunkedScanner();
  let chunk = already;
  for (;;) {
    const r = scanner.scan(chunk, 0, chunk.length);
    if ("error" in r) {
      result.end = "bad-request";
      result.detail = r.error;
      return false;
    }
    await writeAll(upstream, chunk.subarray(0, r.consumed));
    if (r.done) return true;
    const n = await readWithin(conn, buf, opts.idleTimeout);
    if (n === TIMED_OUT || n === null) {
      result.end = n === null ? "client-closed" : "request-timeout";
      result.detail = "request body cut short";
      return false;
    }
    result.up += n;
    chunk = buf.subarray(0, n);
  }
}
