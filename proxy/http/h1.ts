/**
 * The HTTP/1.1 engine: edgemux's own server loop on a terminated connection. It reads request
 * heads with the strict parser, routes them, forwards each to a pooled backend connection and
 * streams bodies through verbatim (a gzip body stays byte-identical, a chunked one keeps its
 * chunks, Server-Sent Events pass as they are written). WebSocket and other upgrades become a
 * raw byte relay after the backend's `101`.
 *
 * @module
 */

import type { HeaderOps } from "../../config/types.ts";
import { ChunkedScanner } from "./wire/chunked.ts";
import type { RequestHead, ResponseHead } from "./wire/head.ts";
import { simpleResponse, STATUS_TEXT } from "./wire/respond.ts";
import {
  applyHeaderOps,
  encodeHead,
  endToEndFields,
  type ForwardingFacts,
  upstreamRequestHead,
} from "./wire/upstream_head.ts";
import { returnScratch, takeScratch } from "./wire/scratch.ts";
import { writeAll } from "../net.ts";
import { relay } from "../relay.ts";
import {
  type Answer,
  bodySettled,
  exchange,
  type OutgoingRequest,
  type RequestBody,
} from "./exchange.ts";
import type { BackendPool, UpstreamConn, UpstreamSet } from "./pool.ts";
import { readRequestHead } from "./read_head.ts";
import { type BufferedReader, TIMED_OUT } from "./reader.ts";
import { decide, type HttpSession, isIdempotent, newRequestRecord } from "./session.ts";
import type { RequestEnd, RequestRecord, SharedEnd } from "../observe/records.ts";

/** What the caller needs to forward one request. */
export interface ForwardTarget {
  pool: BackendPool;
  /** The client connection's own upstream connections. */
  upstreams: UpstreamSet;
  upstreamPath: string;
  requestOps: HeaderOps;
  responseOps: HeaderOps;
  forwarding: ForwardingFacts;
  /** Ask the backend to close after this request (one-off forwards such as ACME). */
  close: boolean;
  idleTimeout: number;
  signal: AbortSignal;
  /** Told the upstream connection in use (and null when done), so a vanished client ends it. */
  onUpstream?: (up: UpstreamConn | null) => void;
}

/** How forwarding one request went, for the request record and the server loop. */
export interface ForwardOutcome {
  status: number;
  server: string | null;
  bytesIn: number;
  bytesOut: number;
  upstreamMs: number | null;
  end: "ok" | "upgraded" | SharedEnd;
  detail: string | null;
  /** The client connection can carry another request. */
  keepAlive: boolean;
}

/** Serves HTTP/1.1 requests on a terminated connection until it closes. */
export async function serveHttp1(
  conn: Deno.Conn,
  reader: BufferedReader,
  session: HttpSession,
): Promise<void> {
  const { ctx } = session;
  // Told the upstream connection of the request in progress; one closure for the connection.
  const onUpstream = (up: UpstreamConn | null) => {
    session.upstream = up;
  };
  for (let first = true;; first = false) {
    const got = await readRequestHead(reader, ctx.http, ctx.softStop, first);
    if (got.kind === "stopping" || got.kind === "closed") return;
    if (got.kind === "timeout") {
      if (got.partial) {
        // readRequestHead has answered 408 and closed the connection.
        log(session, errorRecord(session, 408, "request-timeout", "request head not finished"));
      }
      return;
    }
    if (got.kind === "error") {
      await writeQuietly(conn, simpleResponse(got.status, { close: true }));
      log(session, errorRecord(session, got.status, "bad-request", got.reason));
      return;
    }
    const head = got.head;
    const started = Date.now();
    const record = newRequestRecord(session, "h1", head.method, head.authority, head.path);
    const keepAlive = await handleRequest(conn, reader, head, session, record, onUpstream);
    record.ms = Math.round(Date.now() - started);
    log(session, record);
    if (!keepAlive) return;
  }
}

async function handleRequest(
  conn: Deno.Conn,
  reader: BufferedReader,
  head: RequestHead,
  session: HttpSession,
  record: RequestRecord,
  onUpstream: (up: UpstreamConn | null) => void,
): Promise<boolean> {
  if (head.form === "authority" || head.form === "asterisk") {
    const status = head.method === "CONNECT" ? 501 : 400;
    return await refuse(conn, head, record, status, "bad-request", `${head.form}-form`);
  }
  const decision = decide(session, head.authority, head.path);
  record.host = decision.host;
  switch (decision.kind) {
    case "respond":
      return await refuse(conn, head, record, decision.status, decision.end, decision.detail);
    case "redirect":
      record.route = decision.route.name;
      record.status = decision.status;
      return await answerOwn(conn, head, decision.status, [["location", decision.location]]);
    case "forward": {
      record.route = decision.route.name;
      record.backend = decision.pool.config.name;
      const out = await forwardRequest(conn, reader, head, {
        pool: decision.pool,
        upstreams: session.upstreams,
        upstreamPath: decision.upstreamPath,
        requestOps: decision.route.requestHeaders,
        responseOps: decision.route.responseHeaders,
        forwarding: session.forwarding,
        close: false,
        idleTimeout: session.ctx.listener.idleTimeout,
        signal: session.ctx.hardStop,
        onUpstream,
      });
      record.status = out.status;
      record.server = out.server;
      record.bytes_in = out.bytesIn;
      record.bytes_out = out.bytesOut;
      record.upstream_ms = out.upstreamMs === null ? null : Math.round(out.upstreamMs);
      record.end = out.end;
      record.detail = out.detail;
      return out.keepAlive;
    }
  }
}

/** Refuses a request: its record says why, and the client gets the status. */
async function refuse(
  conn: Deno.Conn,
  head: RequestHead,
  record: RequestRecord,
  status: number,
  end: RequestEnd,
  detail: string | null,
): Promise<boolean> {
  record.status = status;
  record.end = end;
  record.detail = detail;
  return await answerOwn(conn, head, status);
}

/**
 * Answers a request with a short response of edgemux's own. Returns whether the connection can
 * carry another request.
 */
async function answerOwn(
  conn: Deno.Conn,
  head: RequestHead,
  status: number,
  headers?: [string, string][],
): Promise<boolean> {
  // The unread body would be taken for the next request, so an answer to one with a body closes.
  const close = !head.keepAlive || head.body.kind !== "none";
  await writeAll(conn, simpleResponse(status, { headers, close, head: head.method === "HEAD" }));
  return !close;
}

/**
 * Forwards one request whose head has been read (its body, if any, is next in `reader`) and
 * writes the response to `conn`.
 */
export async function forwardRequest(
  conn: Deno.Conn,
  reader: BufferedReader,
  head: RequestHead,
  target: ForwardTarget,
): Promise<ForwardOutcome> {
  const body: RequestBody = head.body.kind === "none" || head.body.kind === "close"
    ? { kind: "none" }
    : { kind: "wire", framing: head.body, reader, idleTimeout: target.idleTimeout };
  // The request head is written (and written again on a retry) only inside forwardWith.
  const scratch = takeScratch();
  const req: OutgoingRequest = {
    method: head.method,
    head: upstreamRequestHead({
      method: head.method,
      path: target.upstreamPath,
      authority: head.authority,
      headers: head.headers,
      connection: head.connection,
      framing: head.body,
      upgrade: head.upgrade,
      forwarding: target.forwarding,
      ops: target.requestOps,
      close: target.close,
    }, scratch),
    body,
    retriable: isIdempotent(head.method) && body.kind === "none",
    upgrade: head.upgrade !== null,
    onConnection: target.onUpstream,
    // 100 Continue and 103 Early Hints go to HTTP/1.1 clients as they come.
    onInterim: head.version === 11 ? (raw) => writeAll(conn, raw) : undefined,
  };
  try {
    return await forwardWith(conn, reader, head, target, req);
  } finally {
    target.onUpstream?.(null);
    returnScratch(scratch);
  }
}

async function forwardWith(
  conn: Deno.Conn,
  reader: BufferedReader,
  head: RequestHead,
  target: ForwardTarget,
  req: OutgoingRequest,
): Promise<ForwardOutcome> {
  const answer = await exchange(target.pool, target.upstreams, req, target.signal);
  if (!answer.ok) {
    const response = simpleResponse(answer.status, {
      close: true,
      head: head.method === "HEAD",
      headers: answer.retryAfter === null ? [] : [["retry-after", String(answer.retryAfter)]],
    });
    await writeQuietly(conn, response);
    return {
      status: answer.status,
      server: answer.server,
      bytesIn: 0,
      bytesOut: 0,
      upstreamMs: null,
      end: answer.end,
      detail: answer.detail,
      keepAlive: false,
    };
  }
  if (answer.head.status === 101 && head.upgrade !== null) {
    return await tunnel(conn, reader, answer, target);
  }
  return await sendResponse(conn, head, answer, target);
}

/** Writes the response head and streams the body to the client. */
async function sendResponse(
  conn: Deno.Conn,
  req: RequestHead,
  answer: Answer,
  target: ForwardTarget,
): Promise<ForwardOutcome> {
  const { up, head } = answer;
  const framing = head.body;
  // An HTTP/1.0 client cannot read chunked bodies: it gets the decoded bytes and a close.
  const dechunk = framing.kind === "chunked" && req.version === 10;
  let keepAlive = req.keepAlive && !target.close && framing.kind !== "close" && !dechunk;

  let text = `HTTP/1.1 ${head.status} ${head.reason || STATUS_TEXT[head.status] || ""}\r\n`;
  const fields = applyHeaderOps(endToEndFields(head.headers, head.connection), target.responseOps);
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  if (framing.kind === "length") text += `content-length: ${framing.length}\r\n`;
  else if (framing.kind === "chunked" && !dechunk) text += "transfer-encoding: chunked\r\n";
  else if (framing.kind === "none") {
    // HEAD and 304 answers keep the length of the body they describe.
    const length = head.headers.find(([n]) => n === "content-length");
    if (length && (req.method === "HEAD" || head.status === 304)) {
      text += `content-length: ${length[1]}\r\n`;
    }
  }
  text += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
  const outcome: ForwardOutcome = {
    status: head.status,
    server: up.server.config.label,
    bytesIn: 0,
    bytesOut: 0,
    upstreamMs: answer.upstreamMs,
    end: "ok",
    detail: null,
    keepAlive: false,
  };
  let upstreamReusable = head.keepAlive;
  const scratch = takeScratch();
  try {
    const bodyResult = await streamBody(
      conn,
      up.reader,
      framing,
      dechunk,
      text,
      scratch,
      target,
      outcome,
    );
    if (bodyResult !== "done") {
      upstreamReusable = false;
      keepAlive = false;
      outcome.end = bodyResult;
    }
  } catch (e) {
    upstreamReusable = false;
    keepAlive = false;
    outcome.end = "client-closed";
    outcome.detail = e instanceof Error ? e.message : String(e);
  } finally {
    returnScratch(scratch);
  }
  // Without a request body, bodySent is "done" already: no timer to race it against.
  const sent = req.body.kind === "none" ? "done" : await bodySettled(answer);
  outcome.bytesIn = answer.bodyBytes();
  if (sent !== "done") {
    upstreamReusable = false;
    keepAlive = false;
    if (outcome.end === "ok" && sent !== "upstream-failed") {
      outcome.end = sent;
    }
  }
  // The client connection's last request: its upstream connection would only be watched while
  // idle and then closed with it, so it is closed now.
  target.upstreams.release(up, upstreamReusable && keepAlive);
  outcome.keepAlive = keepAlive;
  return outcome;
}

/**
 * Writes the head (with the first body bytes, when they are at hand, in the same write: two
 * small writes in a row would meet Nagle's algorithm on the TLS side) and then the body. The
 * head is encoded into `scratch`, which must stay untouched until this returns.
 */
async function streamBody(
  conn: Deno.Conn,
  src: BufferedReader,
  framing: ResponseHead["body"],
  dechunk: boolean,
  headText: string,
  scratch: Uint8Array,
  target: ForwardTarget,
  outcome: ForwardOutcome,
): Promise<"done" | SharedEnd> {
  let pending: Uint8Array | null = encodeHead(headText, scratch);
  const write = async (chunk: Uint8Array) => {
    if (pending === null) return await writeAll(conn, chunk);
    const head = pending;
    pending = null;
    const size = head.length + chunk.length;
    // The head is usually at the front of `scratch`, with room behind it for the chunk.
    const both = head.buffer === scratch.buffer && size <= scratch.length
      ? scratch.subarray(0, size)
      : new Uint8Array(size);
    if (both.buffer !== head.buffer) both.set(head, 0);
    both.set(chunk, head.length);
    await writeAll(conn, both);
  };
  const flushHead = async () => {
    if (pending !== null) {
      const h = pending;
      pending = null;
      await writeAll(conn, h);
    }
  };
  if (framing.kind === "none") {
    await flushHead();
    return "done";
  }
  if (framing.kind === "length") {
    let left = framing.length;
    if (left === 0) await flushHead();
    while (left > 0) {
      const chunk = await upstreamRead(() => src.readChunk(left, target.idleTimeout));
      if (chunk === RESET) return "upstream-reset";
      if (chunk === null) return "upstream-closed";
      if (chunk === TIMED_OUT) return "upstream-timeout";
      await write(chunk);
      left -= chunk.length;
      outcome.bytesOut += chunk.length;
    }
    return "done";
  }
  if (framing.kind === "close") {
    for (;;) {
      const chunk = await upstreamRead(() => src.readChunk(64 * 1024, target.idleTimeout));
      if (chunk === RESET) return "upstream-reset";
      if (chunk === TIMED_OUT) return "upstream-timeout";
      if (chunk === null) {
        await flushHead();
        return "done";
      }
      await write(chunk);
      outcome.bytesOut += chunk.length;
    }
  }
  const scanner = new ChunkedScanner();
  for (;;) {
    if (src.available === 0) {
      const n = await upstreamRead(() => src.fill(64 * 1024, target.idleTimeout));
      if (n === RESET) return "upstream-reset";
      if (n === null) return "upstream-closed";
      if (n === TIMED_OUT) return "upstream-timeout";
    }
    const view = src.view();
    let r;
    if (dechunk) {
      const parts: Uint8Array[] = [];
      // Views, not copies: `view` stays valid until the consume below, after every write.
      r = scanner.scan(view, 0, view.length, (from, to) => parts.push(view.subarray(from, to)));
      for (const p of parts) {
        await write(p);
        outcome.bytesOut += p.length;
      }
    } else {
      r = scanner.scan(view, 0, view.length);
      if (!("error" in r) && r.consumed > 0) {
        await write(view.subarray(0, r.consumed));
        outcome.bytesOut += r.consumed;
      }
    }
    if ("error" in r) return "upstream-invalid";
    src.consume(r.consumed);
    if (r.done) {
      await flushHead();
      return "done";
    }
  }
}

const RESET = Symbol("upstream reset");

/**
 * A read from the backend. Its failure is the backend's (a reset mid-response), told apart
 * from a failure to write to the client, which the caller's catch reports as the client's.
 */
async function upstreamRead<T>(read: () => Promise<T>): Promise<T | typeof RESET> {
  try {
    return await read();
  } catch {
    return RESET;
  }
}

/** After a `101 Switching Protocols`, the connection is a byte stream both ways. */
async function tunnel(
  conn: Deno.Conn,
  reader: BufferedReader,
  answer: Answer,
  target: ForwardTarget,
): Promise<ForwardOutcome> {
  const { up, head } = answer;
  let text = "HTTP/1.1 101 Switching Protocols\r\n";
  const fields = applyHeaderOps(endToEndFields(head.headers, head.connection), target.responseOps);
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  const upgrade = head.headers.find(([n]) => n === "upgrade")?.[1] ?? "websocket";
  text += `connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`;
  const outcome: ForwardOutcome = {
    status: 101,
    server: up.server.config.label,
    bytesIn: 0,
    bytesOut: 0,
    upstreamMs: answer.upstreamMs,
    end: "upgraded",
    detail: null,
    keepAlive: false,
  };
  try {
    await writeAll(conn, encodeHead(text));
    // Bytes that arrived with the heads belong to the new protocol.
    if (up.reader.available > 0) {
      const early = up.reader.drain();
      await writeAll(conn, early);
      outcome.bytesOut += early.length;
    }
    if (reader.available > 0) {
      const early = reader.drain();
      await writeAll(up.conn, early);
      outcome.bytesIn += early.length;
    }
  } catch {
    target.upstreams.release(up, false);
    outcome.end = "client-closed";
    return outcome;
  }
  const result = await relay(conn, up.conn, {
    idleTimeout: target.idleTimeout,
    deadlines: up.reader.deadlines,
  });
  target.upstreams.release(up, false);
  outcome.bytesIn += result.up;
  outcome.bytesOut += result.down;
  outcome.detail = result.end;
  return outcome;
}

function errorRecord(
  session: HttpSession,
  status: number,
  end: RequestEnd,
  detail: string,
): RequestRecord {
  const record = newRequestRecord(session, "h1", "-", null, "-");
  record.status = status;
  record.end = end;
  record.detail = detail;
  return record;
}

function log(session: HttpSession, record: RequestRecord): void {
  session.onRequest(record);
}

async function writeQuietly(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, data);
  } catch {
    // The client is gone; the request record says what it was sent.
  }
}
