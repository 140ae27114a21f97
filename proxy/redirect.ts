/**
 * The plain-HTTP responder behind a `redirect` route: every request gets a redirect to the
 * same host and path over https, except ACME http-01 challenges, which can be handed to a
 * backend. Keep-alive and pipelining work; bad requests get a short status and a close.
 *
 * Every request answered gets its own request record (the access log's one line per HTTP
 * request), as on terminated connections; the connection's access record counts them.
 *
 * @module
 */

import type { RedirectAction } from "../config/types.ts";
import { normalizePath } from "../routing/path.ts";
import type { Accepted, ListenerContext } from "./context.ts";
import type { RequestHead } from "./http/wire/head.ts";
import { simpleResponse, simpleResponseInto } from "./http/wire/respond.ts";
import { NO_HEADER_OPS } from "./http/wire/upstream_head.ts";
import { forwardRequest } from "./http/h1.ts";
import {
  blankRequestRecord,
  type EndReason,
  type OpenAccessRecord,
  type RequestEnd,
  type RequestOrigin,
  type RequestRecord,
} from "./observe/records.ts";
import { UpstreamSet } from "./http/pool.ts";
import { readRequestHead, REQUEST_TIMEOUT } from "./http/read_head.ts";
import { BufferedReader } from "./http/reader.ts";
import { returnScratch, takeScratch } from "./http/wire/scratch.ts";
import { type PeerAddress, writeAll } from "./net.ts";

const ACME_PREFIX = "/.well-known/acme-challenge/";

/**
 * Answers requests on `conn` until the client closes, stops keeping the connection alive, or
 * a timeout or bad request ends it. `first` holds the bytes the sniffer already read.
 */
export async function serveRedirect(
  accepted: Accepted,
  first: Uint8Array,
  action: RedirectAction,
): Promise<void> {
  const { conn, ctx, client, record } = accepted;
  const reader = new BufferedReader(conn, ctx.deadlines, 2048, first);
  // For the redirects themselves; each is written before the next request is read.
  const scratch = takeScratch();
  try {
    await serve(conn, reader, action, ctx, client, record, scratch);
  } finally {
    record.up = reader.totalRead;
    returnScratch(scratch);
  }
}

async function serve(
  conn: Deno.Conn,
  reader: BufferedReader,
  action: RedirectAction,
  ctx: ListenerContext,
  client: PeerAddress,
  record: OpenAccessRecord,
  scratch: Uint8Array,
): Promise<void> {
  const send = async (response: Uint8Array) => {
    await writeAll(conn, response);
    record.down += response.length;
  };
  record.requests = 0;
  const origin: RequestOrigin = { conn: record.conn, listener: record.listener, client: client.ip };
  for (;;) {
    const got = await readRequestHead(reader, ctx.http, ctx.softStop);
    const started = Date.now();
    switch (got.kind) {
      case "timeout":
        if (got.partial) {
          // readRequestHead has answered 408 and closed the connection.
          record.down += REQUEST_TIMEOUT.length;
          const r = requestRecord(origin, record, null);
          finish(ctx, r, started, 408, "request-timeout", "request head not finished");
          return end(record, "request-timeout", null);
        }
        return end(record, "keepalive-timeout", null);
      case "closed":
        return end(record, got.partial ? "client-closed-early" : "client-closed", null);
      case "stopping":
        return end(record, "shutdown", null);
      case "error": {
        const r = requestRecord(origin, record, null);
        await send(simpleResponse(got.status, { close: true })).finally(() =>
          finish(ctx, r, started, got.status, "bad-request", got.reason)
        );
        return end(record, "bad-request", got.reason);
      }
    }
    const head = got.head;
    record.requests++;
    const request = requestRecord(origin, record, head);
    // The ACME prefix is matched on the normalised path, which is also what is forwarded, so
    // `/.well-known/acme-challenge/../../admin` or `..%2F` cannot reach anything else on the
    // ACME backend (routing/path.ts). A path that is refused is redirected like any other.
    const acmePath = (action.acmeBackend === null && !ctx.acme) || !head.path.startsWith("/")
      ? null
      : normalizePath(head.path, ctx.http.pathNormalization);
    // HTTP-01 tokens edgemux placed itself win over the acme_challenge backend.
    if (ctx.acme && acmePath !== null && acmePath.startsWith(ACME_PREFIX)) {
      const answer = await ctx.acme.httpAnswer(acmePath.slice(ACME_PREFIX.length));
      if (answer !== null) {
        const close = !head.keepAlive || head.body.kind !== "none";
        await send(simpleResponse(200, {
          body: answer,
          close,
          head: head.method === "HEAD",
        })).finally(() => finish(ctx, request, started, 200, "acme-answered", null));
        if (close) return end(record, "acme-answered", null);
        continue;
      }
    }
    if (action.acmeBackend !== null && acmePath !== null && acmePath.startsWith(ACME_PREFIX)) {
      const pool = ctx.pools.get(action.acmeBackend)!;
      record.backend = action.acmeBackend;
      // One request per connection: the challenge path is rare and this keeps the plain
      // listener free of keep-alive bookkeeping towards a second backend.
      const upstreams = new UpstreamSet(1);
      const result = await forwardRequest(conn, reader, head, {
        pool,
        upstreams,
        upstreamPath: acmePath,
        requestOps: NO_HEADER_OPS,
        responseOps: NO_HEADER_OPS,
        forwarding: { clientIp: client.ip, proto: "http", trusted: false },
        close: true,
        idleTimeout: ctx.listener.idleTimeout,
        signal: ctx.hardStop,
      }).finally(() => upstreams.close());
      record.server = result.server;
      record.down += result.bytesOut;
      request.backend = action.acmeBackend;
      request.server = result.server;
      request.bytes_in = result.bytesIn;
      request.bytes_out = result.bytesOut;
      request.upstream_ms = result.upstreamMs === null ? null : Math.round(result.upstreamMs);
      finish(ctx, request, started, result.status, result.end, result.detail);
      return end(
        record,
        result.end === "ok" || result.end === "upgraded" ? "acme-forwarded" : result.end,
        result.detail,
      );
    }
    const location = httpsLocation(head, action, ctx);
    if (location === null) {
      await send(simpleResponse(400, { close: true, body: "A Host header is required.\n" }))
        .finally(() => finish(ctx, request, started, 400, "bad-request", "no usable host"));
      return end(record, "bad-request", "no usable host");
    }
    // A request body would have to be read and thrown away to find the next request; closing
    // is simpler and costs a client that sends bodies to port 80 nothing it needs.
    const close = !head.keepAlive || head.body.kind !== "none";
    await send(simpleResponseInto(scratch, action.status, {
      headers: [["location", location]],
      body: `Redirecting to ${location}\n`,
      close,
      head: head.method === "HEAD",
    })).finally(() => finish(ctx, request, started, action.status, "redirected", null));
    if (close) return end(record, "redirected", null);
  }
}

/**
 * A request record for a request on a redirect listener; `head` is null when no request head
 * could be read (a bad or unfinished request), which is logged as method and path "-" the way
 * terminated connections log it.
 */
function requestRecord(
  origin: RequestOrigin,
  record: OpenAccessRecord,
  head: RequestHead | null,
): RequestRecord {
  const r = blankRequestRecord(
    origin,
    "h1",
    head?.method ?? "-",
    head?.authority ?? null,
    head?.path ?? "-",
  );
  r.route = record.route;
  return r;
}

/** Fills in how a request ended and hands its record on. */
function finish(
  ctx: ListenerContext,
  r: RequestRecord,
  started: number,
  status: number,
  how: RequestEnd,
  detail: string | null,
): void {
  r.status = status;
  r.end = how;
  r.detail = detail;
  r.ms = Date.now() - started;
  ctx.onRequest(r);
}

function end(record: OpenAccessRecord, how: EndReason, detail: string | null): void {
  record.end = how;
  record.detail = detail;
}

/**
 * `https://host[:port]/path?query` for a request, or null when the request names no host.
 * The port comes from the config, never from the request's Host, which names the plain-HTTP
 * port the client used.
 */
function httpsLocation(
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
