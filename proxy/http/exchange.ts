/**
 * The upstream half of a proxied request, shared by the HTTP/1.1 and HTTP/2 engines: get a
 * connection, send the head and the body, wait for the response head under the backend's
 * response timeout, and retry once on a fresh connection when a reused one turns out to be dead
 * before anything came back (only for requests that may safely be sent twice).
 *
 * @module
 */

import { ChunkedScanner } from "./wire/chunked.ts";
import { parseResponseHead, type ResponseHead } from "./wire/head.ts";
import { encodeLatin1Into } from "./wire/latin1.ts";
import { closeQuietly, isClosedLocally, writeAll } from "../net.ts";
import type { ServerState } from "../backends/backend.ts";
import type { SharedEnd } from "../observe/records.ts";
import type { BackendPool, DialFailure, UpstreamConn, UpstreamSet } from "./pool.ts";
import { type BufferedReader, TIMED_OUT } from "./reader.ts";

/** Where a request body comes from. */
export type RequestBody =
  | { kind: "none" }
  /** HTTP/1.1 client: the body bytes as framed on the wire, forwarded verbatim. */
  | {
    kind: "wire";
    framing: { kind: "length"; length: number } | { kind: "chunked" };
    reader: BufferedReader;
    idleTimeout: number;
  }
  /** HTTP/2 client: decoded body chunks, framed here (Content-Length when known, else chunked). */
  | { kind: "stream"; stream: ReadableStream<Uint8Array>; length: number | null };

/** How sending the request body ended. */
export type BodyOutcome =
  | "done"
  | "client-closed"
  | "client-timeout"
  | "bad-body"
  | "upstream-failed";

/** A request ready to send. */
export interface OutgoingRequest {
  method: string;
  head: Uint8Array;
  body: RequestBody;
  /** May be sent again on a fresh connection if a reused one fails before answering. */
  retriable: boolean;
  /**
   * The client asked to switch protocols (HTTP/1.1 `Upgrade`). Without it a `101` from the
   * server is a broken answer: what follows it could not be framed as HTTP.
   */
  upgrade: boolean;
  /** Interim (1xx) response heads, as raw bytes, for an HTTP/1.1 client to see. */
  onInterim?: (raw: Uint8Array) => Promise<void>;
  /** Told each upstream connection the request is sent on (to close it if the client leaves). */
  onConnection?: (up: UpstreamConn) => void;
}

/** A response head has arrived; the body is still to be read from `up.reader`. */
export interface Answer {
  ok: true;
  up: UpstreamConn;
  head: ResponseHead;
  /** Resolves when the request body has been sent (or failed). */
  bodySent: Promise<BodyOutcome>;
  /** Time from sending the request to the response head. */
  upstreamMs: number;
  /** Request body bytes forwarded so far (final once `bodySent` resolves). */
  bodyBytes: () => number;
}

/** No response head: what to answer the client with, and why. */
export interface NoAnswer {
  ok: false;
  /** 400/408 when the client's own request body failed (it may be gone already). */
  status: 400 | 408 | 502 | 503 | 504;
  end: SharedEnd;
  detail: string;
  server: string | null;
  /** Seconds for a `Retry-After` header (503 only). */
  retryAfter: number | null;
}

const RESPONSE_HEAD_LIMITS = { maxHeadBytes: 64 * 1024, maxHeaders: 200 };

/**
 * Sends `req` to a server of `pool`'s backend, over a connection of `upstreams` (the client
 * connection's own), and waits for the response head.
 */
export async function exchange(
  pool: BackendPool,
  upstreams: UpstreamSet,
  req: OutgoingRequest,
  signal: AbortSignal,
): Promise<Answer | NoAnswer> {
  const tried = new Set<ServerState>();
  const retries = pool.config.retries;
  // Failures of fresh connections count against `retries`; a pooled connection found dead is a
  // stale leftover, not the server's fault, and gets one free second try on a fresh one.
  let failures = 0;
  let staleRetried = false;
  let last: NoAnswer | null = null;
  for (;;) {
    const got = await upstreams.acquire(pool, !staleRetried && failures === 0, signal, tried);
    // Every server already failed this request: say what they did, not that none is up.
    if ("failure" in got) return last ?? dialFailure(got);
    const { up, reused } = got;
    up.uses++;
    req.onConnection?.(up);
    const started = Date.now();
    let sentBody = 0;
    let bodyStarted = false;
    const failed = (reason: string) => {
      failures++;
      pool.backend.connectFailed(up.server, reason);
      tried.add(up.server);
    };
    try {
      await writeAll(up.conn, req.head);
    } catch (e) {
      upstreams.release(up, false);
      if (isClosedLocally(e)) return cancelled(up, signal);
      last = noAnswer(502, "upstream-reset", `sending the request failed: ${text(e)}`, up);
      // Nothing reached the server, so even a POST may go again.
      if (reused && !staleRetried) {
        staleRetried = true;
        continue;
      }
      if (failures < retries) {
        failed("reset");
        continue;
      }
      return last;
    }
    const bodySent = sendBody(req.body, up, () => {
      bodyStarted = true;
    }, (n) => {
      sentBody += n;
    });
    // A request body that fails on the client's side (it left, stalled, or sent broken chunked
    // framing) ends the exchange at once: waiting for a response to half a request would only
    // hold the backend until response_timeout.
    const headRead = readResponseHead(up.reader, req, pool.config.responseTimeout);
    const first: HeadResult | BodyOutcome = await Promise.race([
      headRead,
      bodySent.then((o): Promise<HeadResult | BodyOutcome> | BodyOutcome =>
        o === "done" || o === "upstream-failed" ? headRead : o
      ),
    ]);
    if (typeof first === "string") {
      upstreams.release(up, false);
      headRead.catch(() => {});
      const status = first === "bad-body" ? 400 : 408;
      const end = first === "bad-body"
        ? "bad-request"
        : first === "client-timeout"
        ? "request-timeout"
        : "client-closed";
      return {
        ok: false,
        status,
        end,
        detail: first === "bad-body" ? "malformed chunked request body" : "request body cut short",
        server: up.server.config.label,
        retryAfter: null,
      };
    }
    const result = first;
    if (result.kind === "head") {
      pool.backend.responded(up.server, result.head.status);
      return {
        ok: true,
        up,
        head: result.head,
        bodySent,
        upstreamMs: Date.now() - started,
        bodyBytes: () => sentBody,
      };
    }
    // The body task fails on its next write to the closed connection; nobody waits for it.
    upstreams.release(up, false);
    if (result.kind === "cancelled") return cancelled(up, signal);
    // May this request go to another server? Only when it can be sent again unchanged and may
    // safely be processed twice (RFC 9110 §9.2.2).
    if (result.kind === "closed" && req.retriable && !bodyStarted) {
      last = noAnswer(502, "upstream-closed", result.reason, up);
      // A pooled connection the server had already closed answers with an immediate EOF; that
      // says nothing about the server. A fresh one failing does.
      if (reused && !staleRetried) {
        staleRetried = true;
        continue;
      }
      if (failures < retries) {
        failed(result.reason);
        continue;
      }
    }
    if (result.kind === "timeout") {
      return noAnswer(504, "upstream-timeout", "no response head within response_timeout", up);
    }
    if (result.kind === "invalid") return noAnswer(502, "upstream-invalid", result.reason, up);
    return noAnswer(502, "upstream-closed", result.reason, up);
  }
}

function dialFailure(f: DialFailure): NoAnswer {
  const full = f.failure === "server-full" || f.failure === "upstream-limit";
  return {
    ok: false,
    // Out of local descriptors or ports is edgemux's own trouble, and passes: 503, not 502.
    status: f.failure === "no-server-up" || full || f.failure === "local-resource"
      ? 503
      : f.failure === "upstream-timeout"
      ? 504
      : 502,
    end: f.failure,
    detail: f.detail,
    server: f.server?.config.label ?? null,
    retryAfter: f.failure === "no-server-up"
      ? 5
      : full || f.failure === "local-resource"
      ? 1
      : null,
  };
}

/**
 * The exchange was cut from edgemux's side: the client's connection ended (which closes the
 * upstream connections it held) or the stop's drain ran out. The server did nothing wrong, so
 * this is neither retried nor counted against it: otherwise a client that sends requests and
 * hangs up could take a healthy server out of rotation for every other client.
 */
function cancelled(up: UpstreamConn, signal: AbortSignal): NoAnswer {
  return {
    ok: false,
    status: 502,
    end: "client-closed",
    detail: signal.aborted
      ? "edgemux's stop closed the connections while the request waited for its response"
      : "the client's connection ended while the request waited for its response",
    server: up.server.config.label,
    retryAfter: null,
  };
}

function noAnswer(status: 502 | 504, end: SharedEnd, detail: string, up: UpstreamConn): NoAnswer {
  return { ok: false, status, end, detail, server: up.server.config.label, retryAfter: null };
}

/**
 * How long a finished response waits for the rest of its request body (a backend may answer
 * early) before the body counts as cut short and the connections close.
 */
export const BODY_GRACE = 5_000;

/**
 * How the request body ended, once the response is complete: a backend may answer before it has
 * read the whole body, and the client may then never finish sending it. After `graceMs` the body
 * counts as cut short, so the connection is closed rather than kept with half a request in it.
 */
export async function bodySettled(answer: Answer, graceMs = BODY_GRACE): Promise<BodyOutcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    answer.bodySent,
    new Promise<BodyOutcome>((resolve) =>
      timer = setTimeout(() => resolve("client-timeout"), graceMs)
    ),
  ]);
  clearTimeout(timer);
  return outcome;
}

function text(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

type HeadResult =
  | { kind: "head"; head: ResponseHead }
  | { kind: "timeout" }
  | { kind: "closed"; reason: string }
  | { kind: "invalid"; reason: string }
  /** edgemux closed the connection itself (see {@link cancelled}). */
  | { kind: "cancelled" };

async function readResponseHead(
  reader: BufferedReader,
  req: OutgoingRequest,
  timeout: number,
): Promise<HeadResult> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const parsed = parseResponseHead(reader.view(), req.method, RESPONSE_HEAD_LIMITS);
    if (parsed.kind === "head") {
      const head = parsed.head;
      if (head.status === 101 && !req.upgrade) {
        return {
          kind: "invalid",
          reason: "101 Switching Protocols to a request that asked for no upgrade",
        };
      }
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        // Interim responses (100 Continue, 103 Early Hints): pass on and keep reading.
        const raw = reader.view().slice(0, head.end);
        reader.consume(head.end);
        if (req.onInterim) await req.onInterim(raw);
        continue;
      }
      reader.consume(head.end);
      return { kind: "head", head };
    }
    if (parsed.kind === "error") return { kind: "invalid", reason: parsed.reason };
    let n;
    try {
      n = await reader.fill(RESPONSE_HEAD_LIMITS.maxHeadBytes + 1, deadline - Date.now());
    } catch (e) {
      if (isClosedLocally(e)) return { kind: "cancelled" };
      return { kind: "closed", reason: `the server reset the connection: ${text(e)}` };
    }
    if (n === TIMED_OUT) return { kind: "timeout" };
    if (n === null) {
      return {
        kind: "closed",
        reason: reader.available === 0
          ? "the server closed the connection without a response"
          : "the server closed the connection in the middle of the response head",
      };
    }
  }
}

const CRLF = new Uint8Array([13, 10]);
const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");

async function sendBody(
  body: RequestBody,
  up: UpstreamConn,
  onStart: () => void,
  count: (n: number) => void,
): Promise<BodyOutcome> {
  try {
    switch (body.kind) {
      case "none":
        return "done";
      case "wire":
        return await sendWireBody(body, up.conn, onStart, count);
      case "stream":
        return await sendStreamBody(body, up.conn, onStart, count);
    }
  } catch {
    closeQuietly(up.conn);
    return "upstream-failed";
  }
}

async function sendWireBody(
  body: Extract<RequestBody, { kind: "wire" }>,
  dst: Deno.Conn,
  onStart: () => void,
  count: (n: number) => void,
): Promise<BodyOutcome> {
  const reader = body.reader;
  if (body.framing.kind === "length") {
    let left = body.framing.length;
    while (left > 0) {
      const chunk = await reader.readChunk(left, body.idleTimeout);
      if (chunk === null) return "client-closed";
      if (chunk === TIMED_OUT) return "client-timeout";
      onStart();
      await writeAll(dst, chunk);
      left -= chunk.length;
      count(chunk.length);
    }
    return "done";
  }
  const scanner = new ChunkedScanner();
  for (;;) {
    if (reader.available === 0) {
      const n = await reader.fill(64 * 1024, body.idleTimeout);
      if (n === null) return "client-closed";
      if (n === TIMED_OUT) return "client-timeout";
    }
    const view = reader.view();
    const r = scanner.scan(view, 0, view.length);
    if ("error" in r) return "bad-body";
    onStart();
    await writeAll(dst, view.subarray(0, r.consumed));
    count(r.consumed);
    reader.consume(r.consumed);
    if (r.done) return "done";
  }
}

async function sendStreamBody(
  body: Extract<RequestBody, { kind: "stream" }>,
  dst: Deno.Conn,
  onStart: () => void,
  count: (n: number) => void,
): Promise<BodyOutcome> {
  const chunked = body.length === null;
  const reader = body.stream.getReader();
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch {
        return "client-closed";
      }
      if (result.done) break;
      const chunk = result.value;
      if (chunk.length === 0) continue;
      onStart();
      if (chunked) {
        const size = `${chunk.length.toString(16)}\r\n`;
        const framed = new Uint8Array(size.length + chunk.length + 2);
        const at = encodeLatin1Into(size, framed, 0);
        framed.set(chunk, at);
        framed.set(CRLF, at + chunk.length);
        await writeAll(dst, framed);
      } else {
        await writeAll(dst, chunk);
      }
      count(chunk.length);
    }
    if (chunked) await writeAll(dst, LAST_CHUNK);
    return "done";
  } finally {
    reader.releaseLock();
  }
}
