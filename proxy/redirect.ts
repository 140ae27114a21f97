/**
 * The plain-HTTP responder behind a `redirect` route: every request gets a redirect to the
 * same host and path over https, except ACME http-01 challenges, which can be handed to a
 * backend. Keep-alive and pipelining work; bad requests get a short status and a close.
 *
 * @module
 */

import type { RedirectAction } from "../config/types.ts";
import type { AccessRecord, ListenerContext } from "./context.ts";
import { parseRequestHead, type RequestHead } from "./http1/head.ts";
import { simpleResponse } from "./http1/respond.ts";
import { forwardOneRequest } from "./http1/forward_once.ts";
import { type PeerAddress, readWithin, TIMED_OUT, writeAll } from "./net.ts";

const ACME_PREFIX = "/.well-known/acme-challenge/";

/**
 * Answers requests on `conn` until the client closes, stops keeping the connection alive, or
 * a timeout or bad request ends it. `first` holds the bytes the sniffer already read.
 */
export async function serveRedirect(
  conn: Deno.Conn,
  first: Uint8Array,
  action: RedirectAction,
  ctx: ListenerContext,
  client: PeerAddress,
  record: AccessRecord,
): Promise<void> {
  const http = ctx.http;
  const limits = { maxHeadBytes: http.maxHeadSize, maxHeaders: http.maxHeaders };
  let buf = new Uint8Array(Math.max(first.length, 2048));
  buf.set(first);
  let length = first.length;
  let headStarted = performance.now();
  record.requests = 0;
  for (;;) {
    const parsed = parseRequestHead(buf.subarray(0, length), limits);
    if (parsed.kind === "incomplete") {
      if (length === buf.length) {
        // The parser answers with an error once maxHeadBytes is passed, so this stays bounded.
        const bigger = new Uint8Array(Math.min(buf.length * 2, http.maxHeadSize + 1));
        bigger.set(buf);
        buf = bigger;
      }
      const wait = length === 0
        ? http.keepaliveTimeout
        : http.requestHeadTimeout - (performance.now() - headStarted);
      // Between requests a graceful stop may close the connection; within one it may not.
      const n = await readWithin(
        conn,
        buf.subarray(length),
        wait,
        length === 0 ? ctx.softStop : undefined,
      );
      if (n === TIMED_OUT) {
        if (length > 0) {
          const response = simpleResponse(408, { close: true });
          await writeAll(conn, response);
          record.down += response.length;
          return end(record, "request-timeout", null);
        }
        return end(record, ctx.softStop.aborted ? "shutdown" : "keepalive-timeout", null);
      }
      if (n === null) return end(record, "client-closed", null);
      if (length === 0) headStarted = performance.now();
      length += n;
      record.up += n;
      continue;
    }
    if (parsed.kind === "error") {
      const response = simpleResponse(parsed.status, { close: true });
      await writeAll(conn, response);
      record.down += response.length;
      return end(record, "bad-request", parsed.reason);
    }
    const head = parsed.head;
    record.requests++;
    if (action.acmeBackend !== null && head.path.startsWith(ACME_PREFIX)) {
      const backend = ctx.backends.get(action.acmeBackend)!;
      record.backend = backend.config.name;
      const result = await forwardOneRequest(conn, buf.subarray(0, length), head, backend, client, {
        idleTimeout: ctx.listener.idleTimeout,
        signal: ctx.hardStop,
      });
      record.server = result.server;
      record.up += result.up;
      record.down += result.down;
      return end(record, result.end, result.detail);
    }
    const location = httpsLocation(head, action, ctx);
    if (location === null) {
      const response = simpleResponse(400, { close: true, body: "A Host header is required.\n" });
      await writeAll(conn, response);
      record.down += response.length;
      return end(record, "bad-request", "no usable host");
    }
    // A request body would have to be read and thrown away to find the next request; closing
    // is simpler and costs a client that sends bodies to port 80 nothing it needs.
    const close = !head.keepAlive || head.body.kind !== "none";
    const response = simpleResponse(action.status, {
      headers: [["location", location]],
      body: `Redirecting to ${location}\n`,
      close,
      head: head.method === "HEAD",
    });
    await writeAll(conn, response);
    record.down += response.length;
    if (close) return end(record, "redirected", null);
    buf.copyWithin(0, head.end, length);
    length -= head.end;
    headStarted = performance.now();
  }
}

function end(record: AccessRecord, how: string, detail: string | null): void {
  record.end = how;
  record.detail = detail;
}

/**
 * `https://host[:port]/path?query` for a request, or null when the request names no host.
 * The port comes from the config, never from the request's Host, which names the plain-HTTP
 * port the client used.
 */
export function httpsLocation(
  head: RequestHead,
  action: RedirectAction,
  ctx: Pick<ListenerContext, "boundPort">,
): string | null {
  const authority = head.authority;
  if (authority === null || authority === "") return null;
  const host = authority.startsWith("[")
    ? authority.slice(0, authority.indexOf("]") + 1)
    : authority.split(":")[0];
  if (host === "") return null;
  const port = action.httpsPort ??
    (action.httpsListener !== null ? ctx.boundPort(action.httpsListener) : null);
  const path = head.path === "" ? "/" : head.path;
  return `https://${host}${port === null || port === 443 ? "" : `:${port}`}${path}`;
}
