/**
 * The HTTP/2 engine: Deno's own HTTP server (hyper) on a terminated connection, through the
 * internal `serveHttpOnConnection` (the only way to serve on a connection edgemux accepted and to
 * bound its idle time). Each request is routed like an HTTP/1.1 one and forwarded to the
 * backend over HTTP/1.1 by the same upstream code; the response body is streamed back as the
 * backend sends it, decoded from chunked framing since HTTP/2 frames it afresh.
 *
 * @module
 */

import { serveHttpOnConnection } from "../_deno_internals.ts";
import { closeQuietly } from "../net.ts";
import { ChunkedScanner } from "./wire/chunked.ts";
import { type BodyFraming, checkAuthority } from "./wire/head.ts";
import { pathRefusal } from "../../routing/path.ts";
import { log } from "../observe/log.ts";
import { STATUS_TEXT } from "./wire/respond.ts";
import { applyHeaderOps, endToEndFields, upstreamRequestHead } from "./wire/upstream_head.ts";
import { returnScratch, takeScratch } from "./wire/scratch.ts";
import { type Answer, bodySettled, exchange, type RequestBody } from "./exchange.ts";
import type { UpstreamConn, UpstreamSet } from "./pool.ts";
import { TIMED_OUT } from "./reader.ts";
import { decide, type HttpSession, isIdempotent, newRequestRecord } from "./session.ts";
import type { RequestRecord } from "../observe/records.ts";

/** Serves HTTP/2 on a terminated connection until the client or a timeout closes it. */
export async function serveHttp2(conn: Deno.Conn, session: HttpSession): Promise<void> {
  const { ctx } = session;
  const ac = new AbortController();
  let active = 0;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let closing = false;
  let requests = 0;
  let fallback: ReturnType<typeof setTimeout> | undefined;
  // Closing gracefully (a GOAWAY, then the end of the streams in flight) rather than by abort,
  // which would cut off the tail of a response still being written. Deno's graceful shutdown
  // does not end a connection that never carried a request, so that one is aborted (it has
  // nothing to flush), and any other gets a grace period before its socket is closed.
  const close = () => {
    clearTimeout(idleTimer);
    if (closing) return;
    closing = true;
    if (requests === 0) {
      ac.abort();
      return;
    }
    served.shutdown().catch(() => {});
    fallback = setTimeout(() => closeQuietly(conn), 2000);
  };
  const idle = () => {
    clearTimeout(idleTimer);
    if (ctx.softStop.aborted) close();
    // Before its first request a connection has request_head_timeout, as in HTTP/1.1: a client
    // that finishes its handshake and then sends no complete request holds nothing for longer.
    else {
      idleTimer = setTimeout(
        close,
        requests === 0 ? ctx.http.requestHeadTimeout : ctx.http.keepaliveTimeout,
      );
    }
  };
  const onSoftStop = () => {
    if (active === 0) close();
  };
  // At the drain deadline the client side is closed by the relay anyway; aborting is only safe
  // while no graceful shutdown has started.
  const onHardStop = () => {
    if (!closing) ac.abort();
    else closeQuietly(conn);
  };
  ctx.softStop.addEventListener("abort", onSoftStop);
  ctx.hardStop.addEventListener("abort", onHardStop);
  const done = () => {
    if (--active === 0) idle();
  };
  const handler = (req: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    active++;
    requests++;
    clearTimeout(idleTimer);
    info.completed.then(done, done);
    return handleRequest(req, session, info);
  };
  const served = serveHttpOnConnection(
    conn,
    ac.signal,
    handler,
    () => new Response("Internal Server Error\n", { status: 500 }),
    () => {},
  );
  idle();
  try {
    await served.finished;
  } catch {
    // The client reset the connection; every stream on it has ended with it.
  } finally {
    clearTimeout(idleTimer);
    clearTimeout(fallback);
    ctx.softStop.removeEventListener("abort", onSoftStop);
    ctx.hardStop.removeEventListener("abort", onHardStop);
  }
}

/** Answers a request edgemux will not forward, saying why in its record. */
function refuse(record: RequestRecord, status: number, detail: string): Response {
  record.status = status;
  record.end = "bad-request";
  record.detail = detail;
  return plain(status);
}

/**
 * A request whose handling threw (a bug, or a socket error nobody expected): a 500 and a record
 * that says so, never a record that claims success.
 */
function internalError(record: RequestRecord, e: unknown): Response {
  const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  record.status = 500;
  record.end = "internal-error";
  record.detail = detail;
  log.error("HTTP/2 request failed", {
    conn: record.conn,
    listener: record.listener,
    host: record.host,
    path: record.path,
    error: detail,
  });
  return plain(500);
}

function plain(status: number, extra: [string, string][] = []): Response {
  const body = status === 204 || status === 304 ? null : `${STATUS_TEXT[status] ?? ""}\n`;
  return new Response(body, {
    status,
    headers: [["content-type", "text/plain; charset=utf-8"], ...extra],
  });
}

async function handleRequest(
  req: Request,
  session: HttpSession,
  info: Deno.ServeHandlerInfo,
): Promise<Response> {
  const started = Date.now();
  const url = req.url;
  const hostStart = url.indexOf("//") + 2;
  const pathStart = url.indexOf("/", hostStart);
  const authority = url.slice(hostStart, pathStart < 0 ? url.length : pathStart).toLowerCase();
  // Deno builds the URL as scheme://authority + :path, so a :path that does not start with "/"
  // ("*") runs into the authority; "" makes decide() refuse it as no origin-form path (400).
  const path = pathStart < 0 ? "" : url.slice(pathStart);
  const record = newRequestRecord(session, "h2", req.method, authority, path);
  const finish = () => {
    record.ms = Math.round(Date.now() - started);
    session.onRequest(record);
  };
  info.completed.then(finish, () => {
    if (record.end === "ok") record.end = "client-closed";
    finish();
  });
  try {
    return await respond(req, session, record, authority, path, pathStart);
  } catch (e) {
    return internalError(record, e);
  }
}

/** Checks, routes and forwards one request whose record is made; the response to give. */
async function respond(
  req: Request,
  session: HttpSession,
  record: RequestRecord,
  authority: string,
  path: string,
  pathStart: number,
): Promise<Response> {
  // RFC 9113 §8.3.1: `:path` is a request-target and may hold what an HTTP/1.1 one may and
  // nothing else (a character above U+00FF could not even be written upstream); decide() refuses
  // the rest with the path rules' reason. `:authority` follows the rules of a Host field: a port
  // is 1-65535, in digits, without leading zeros.
  if (pathStart < 0) {
    // The authority seen here has the target glued to it; the target is what is wrong.
    const mode = session.ctx.http.pathNormalization;
    return refuse(record, 400, `invalid path: ${pathRefusal(path, mode)}`);
  }
  if (checkAuthority(authority) === null) {
    return refuse(record, 400, authority === "" ? "no host" : "invalid :authority");
  }

  // The same caps as an HTTP/1.1 head (Deno's HTTP/2 server has its own, larger ones). One pass
  // over the fields measures them, copies them for the upstream head and finds the length.
  const http = session.ctx.http;
  const headers: [string, string][] = [];
  let lengthText: string | null = null;
  let size = req.method.length + path.length + authority.length + 16;
  for (const field of req.headers) {
    headers.push(field);
    size += field[0].length + field[1].length + 4;
    if (field[0] === "content-length") lengthText = field[1];
  }
  const fieldCount = headers.length;
  if (fieldCount > http.maxHeaders || size > http.maxHeadSize) {
    record.status = 431;
    record.end = "bad-request";
    record.detail = fieldCount > http.maxHeaders
      ? `${fieldCount} header fields, over max_headers`
      : `request head of ${size} bytes, over max_head_size`;
    return plain(431);
  }
  const decision = decide(session, authority, path);
  record.host = decision.host;
  if (decision.kind === "respond") {
    record.status = decision.status;
    record.end = decision.end;
    record.detail = decision.detail;
    return plain(decision.status);
  }
  record.route = decision.route.name;
  if (decision.kind === "redirect") {
    record.status = decision.status;
    return plain(decision.status, [["location", decision.location]]);
  }
  record.backend = decision.pool.config.name;
  const length = lengthText !== null && /^\d+$/.test(lengthText) ? Number(lengthText) : null;
  const framing: BodyFraming = req.body === null
    ? { kind: "none" }
    : length !== null
    ? { kind: "length", length }
    : { kind: "chunked" };
  const body: RequestBody = req.body === null
    ? { kind: "none" }
    : { kind: "stream", stream: req.body, length };
  // The request head is written (and written again on a retry) only inside exchange().
  const scratch = takeScratch();
  const answer = await exchange(
    decision.pool,
    session.upstreams,
    {
      method: req.method,
      head: upstreamRequestHead({
        method: req.method,
        path: decision.upstreamPath,
        authority,
        headers,
        connection: [],
        framing,
        upgrade: null,
        forwarding: session.forwarding,
        ops: decision.route.requestHeaders,
        close: false,
      }, scratch),
      body,
      retriable: isIdempotent(req.method) && body.kind === "none",
      // HTTP/2 has no Upgrade (RFC 9113 §8.6): a 101 is never an answer to it.
      upgrade: false,
    },
    session.ctx.hardStop,
  ).finally(() => returnScratch(scratch));
  if (!answer.ok) {
    record.status = answer.status;
    record.end = answer.end;
    record.detail = answer.detail;
    record.server = answer.server;
    return plain(
      answer.status,
      answer.retryAfter === null ? [] : [["retry-after", String(answer.retryAfter)]],
    );
  }
  const { up, head } = answer;
  const giveBack = (reusable: boolean) =>
    release(session.upstreams, answer, reusable, body.kind !== "none");
  record.status = head.status;
  record.server = up.server.config.label;
  record.upstream_ms = Math.round(answer.upstreamMs);
  answer.bodySent.then(() => record.bytes_in = answer.bodyBytes());
  const fields = applyHeaderOps(
    endToEndFields(head.headers, head.connection),
    decision.route.responseHeaders,
  );
  if (head.body.kind === "length") fields.push(["content-length", String(head.body.length)]);
  // The response parser gives answers to HEAD, 204 and 304 no body.
  if (head.body.kind === "none") {
    const length = head.headers.find(([n]) => n === "content-length");
    if (length && (req.method === "HEAD" || head.status === 304)) fields.push(length);
    await giveBack(head.keepAlive);
    return new Response(null, { status: head.status, headers: fields });
  }
  if (head.body.kind === "length" && head.body.length <= SMALL_BODY) {
    // A small body is read whole and handed over as bytes: a stream per response costs Deno a
    // resource and several ops, more than the proxying itself for typical API responses.
    const body = await readSmallBody(up, head.body.length, session.ctx.listener.idleTimeout);
    if (body !== null) {
      record.bytes_out = body.length;
      await giveBack(head.keepAlive);
      return new Response(body, { status: head.status, headers: fields });
    }
    record.end = "upstream-closed";
    await giveBack(false);
    return plain(502);
  }
  return new Response(
    responseStream(up, head.body, giveBack, head.keepAlive, session, record),
    { status: head.status, headers: fields },
  );
}

/**
 * Gives an upstream connection back once its response has been read in full. It may carry
 * another request only if the request body was sent in full too: a backend may answer a POST
 * before reading all of it, and the rest of that body must not go out on a connection that
 * carries the next request. The response is not ended before that either: Deno's HTTP/2 server
 * stops taking a stream's body once its response has ended, without resetting the stream, and
 * the client would then wait with its upload half sent.
 */
async function release(
  upstreams: UpstreamSet,
  answer: Answer,
  reusable: boolean,
  hasBody: boolean,
): Promise<void> {
  // Without a request body there is nothing to wait for (and no timer to set per request).
  if (!reusable || !hasBody) {
    upstreams.release(answer.up, reusable);
    return;
  }
  const sent = await bodySettled(answer);
  upstreams.release(answer.up, sent === "done");
}

/** Bodies up to this size are read whole before the response starts. */
const SMALL_BODY = 64 * 1024;

/** Reads exactly `length` body bytes, or null if the server stops first. */
async function readSmallBody(
  up: UpstreamConn,
  length: number,
  idleTimeout: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const reader = up.reader;
  while (reader.available < length) {
    let n;
    try {
      n = await reader.fill(Math.max(length, 4096), idleTimeout);
    } catch {
      return null;
    }
    if (n === null || n === TIMED_OUT) return null;
  }
  const body = reader.view().slice(0, length) as Uint8Array<ArrayBuffer>;
  reader.consume(length);
  return body;
}

/** The backend's response body as a stream, giving the connection back once it has ended. */
function responseStream(
  up: UpstreamConn,
  framing: BodyFraming,
  giveBack: (reusable: boolean) => Promise<void>,
  keepAlive: boolean,
  session: HttpSession,
  record: RequestRecord,
): ReadableStream<Uint8Array> {
  const idleTimeout = session.ctx.listener.idleTimeout;
  const reader = up.reader;
  let left = framing.kind === "length" ? framing.length : 0;
  const scanner = framing.kind === "chunked" ? new ChunkedScanner() : null;
  let released = false;
  const release = async (reusable: boolean) => {
    if (released) return;
    released = true;
    await giveBack(reusable);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          if (framing.kind === "length" && left === 0) {
            await release(keepAlive);
            controller.close();
            return;
          }
          if (reader.available === 0) {
            const n = await reader.fill(64 * 1024, idleTimeout);
            if (n === TIMED_OUT || n === null) {
              if (framing.kind === "close" && n === null) {
                await release(false);
                controller.close();
                return;
              }
              record.end = n === null ? "upstream-closed" : "upstream-timeout";
              release(false);
              controller.error(new Error(record.end));
              return;
            }
          }
          const view = reader.view();
          if (scanner === null) {
            const take = framing.kind === "length" ? Math.min(left, view.length) : view.length;
            controller.enqueue(view.slice(0, take));
            reader.consume(take);
            left -= take;
            record.bytes_out += take;
            return;
          }
          const parts: Uint8Array[] = [];
          const r = scanner.scan(view, 0, view.length, (a, b) => parts.push(view.slice(a, b)));
          if ("error" in r) {
            record.end = "upstream-invalid";
            record.detail = r.error;
            release(false);
            controller.error(new Error(r.error));
            return;
          }
          reader.consume(r.consumed);
          for (const p of parts) {
            controller.enqueue(p);
            record.bytes_out += p.length;
          }
          if (r.done) {
            await release(keepAlive);
            controller.close();
            return;
          }
          if (parts.length > 0) return;
        }
      } catch (e) {
        record.end = "upstream-reset";
        record.detail = e instanceof Error ? e.message : String(e);
        release(false);
        controller.error(e);
      }
    },
    cancel() {
      // The client went away mid-body: the upstream connection is mid-response, not reusable.
      if (record.end === "ok") record.end = "client-closed";
      release(false);
    },
  });
}
