/**
 * One accepted connection, from accept to the access log line:
 * accept → sniff → route → act (connect → relay, or terminate, redirect, reject) → log.
 *
 * Each phase is a function that takes the connection as accepted ({@link Accepted}) and what the
 * phase before it found, and returns what it found in turn: {@link fromSniff} a `Sniffed`,
 * {@link routeOf} a route, and the last phases how the connection ended ({@link Ended}).
 * {@link handleConnection} runs them in order, owns the cleanup and writes the one access record.
 * Nothing thrown here reaches the accept loop.
 *
 * @module
 */

import { formatHostPort } from "../config/address.ts";
import { assertNever, isTerminating, type RouteConfig } from "../config/types.ts";
import type { Accepted, Ended, ListenerContext, Sniffed } from "./context.ts";
import type { AccessRecord, EndReason, OpenAccessRecord } from "./observe/records.ts";
import { ALERT_DECODE_ERROR, ALERT_UNRECOGNIZED_NAME } from "./sniff/classify.ts";
import { log } from "./observe/log.ts";
import { localCause, noteLocalError } from "./backends/local_errors.ts";
import { closeQuietly, noDelay, type PeerAddress, peerAddress, writeAll } from "./net.ts";
import { encodeProxyHeader } from "./sniff/proxy_protocol.ts";
import { serveRedirect } from "./redirect.ts";
import { answerTlsAlpnChallenge } from "./tls/acme_challenges.ts";
import { terminate } from "./tls/terminate.ts";
import { relay } from "./relay.ts";
import { sniff, type SniffResult, type Verdict } from "./sniff/sniff.ts";
import { connectUpstream, warnUpstreamFailure } from "./backends/upstream.ts";
import type { Backend } from "./backends/backend.ts";
import { admitToBackend } from "./limits.ts";

let connectionCounter = 0;
/** What is replayed upstream when nothing was read first (shared: nobody writes into it). */
const NO_BYTES = new Uint8Array(0);
const NO_ALPN: readonly string[] = Object.freeze([]);

/** A listener with only a catch-all route forwards at once, without reading first. */
const UNSNIFFED: Sniffed = Object.freeze({
  protocol: "unknown",
  sni: null,
  alpn: NO_ALPN,
  first: NO_BYTES,
  pending: undefined,
  idn: false,
});

// The ends without a detail, made once rather than per connection.
const CLIENT_CLOSED: Ended = Object.freeze({ end: "client-closed" });
const CLIENT_CLOSED_EARLY: Ended = Object.freeze({ end: "client-closed-early" });
const NO_ROUTE: Ended = Object.freeze({ end: "no-route" });
const REJECTED: Ended = Object.freeze({ end: "rejected" });

function newRecord(ctx: ListenerContext, client: PeerAddress): OpenAccessRecord {
  return {
    conn: ++connectionCounter,
    listener: ctx.listener.name,
    client: formatHostPort({ host: client.ip, port: client.port }),
    protocol: null,
    sni: null,
    alpn: [],
    route: null,
    backend: null,
    server: null,
    up: 0,
    down: 0,
    ms: 0,
    end: null,
    detail: null,
    requests: null,
  };
}

/**
 * Closes a connection refused before it is handled (over a cap, or its PROXY header refused)
 * and writes its access line.
 */
export function refuseConnection(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  client: PeerAddress,
  why: EndReason,
  detail: string | null = null,
  up = 0,
): void {
  const record = newRecord(ctx, client);
  record.end = why;
  record.detail = detail;
  record.up = up;
  closeQuietly(conn);
  ctx.onAccess(record as AccessRecord);
}

/**
 * Runs one connection to its end. Never throws.
 *
 * @param client `peerAddress(conn.remoteAddr)`, which the accept loop has already worked out,
 *   or the client a PROXY header named
 * @param destination the address the client connected to, when a PROXY header named it (it is
 *   written into PROXY headers sent onwards); the local end of `conn` otherwise
 */
export async function handleConnection(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  client: PeerAddress,
  destination?: PeerAddress,
): Promise<void> {
  const started = Date.now();
  const record = newRecord(ctx, client);
  const accepted: Accepted = { conn, ctx, client, destination, record };
  noDelay(conn);
  try {
    const ended = await run(accepted);
    // null: the phase that took the connection (terminate, redirect, an ACME answer) wrote it.
    if (ended !== null) {
      record.end = ended.end;
      if (ended.detail !== undefined) record.detail = ended.detail;
    }
  } catch (e) {
    // A bug or an unexpected socket error: log it once with context, never to the client.
    record.detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    // Out of descriptors (the hop to the internal TLS listener, say): a local problem, logged
    // once per interval rather than once per connection.
    const cause = localCause(e);
    if (cause !== null) {
      record.end ??= "local-resource";
      noteLocalError(cause, "connection", { listener: record.listener });
      return;
    }
    record.end ??= "internal-error";
    log.error("connection failed", {
      conn: record.conn,
      listener: record.listener,
      client: record.client,
      route: record.route,
      error: record.detail,
    });
  } finally {
    closeQuietly(conn);
    record.ms = Date.now() - started;
    // Every path above sets it; a phase that forgot would otherwise log nothing to count.
    record.end ??= "internal-error";
    ctx.onAccess(record as AccessRecord);
  }
}

/**
 * The phases in order; each stops the connection by returning how it ended. The deciding phases
 * are plain functions; the alerts a refusal sends are written here, so the number of async steps
 * per connection stays what it was.
 */
async function run(a: Accepted): Promise<Ended | null> {
  let sniffed: Sniffed | Ended = UNSNIFFED;
  // Without it, only a catch-all route: forward at once, so server-speaks-first protocols work.
  if (a.ctx.table.sniff) {
    sniffed = fromSniff(a.record, await sniff(a.conn, a.ctx.listener.sniff, a.ctx.deadlines));
    if ("end" in sniffed) {
      if (sniffed.end === "malformed-hello") await sendQuietly(a.conn, ALERT_DECODE_ERROR);
      return sniffed;
    }
  }
  a.record.protocol = sniffed.protocol;
  // TLS-ALPN-01 validation of a name edgemux orders for, whatever that name's route is.
  if (
    a.ctx.acme &&
    await answerTlsAlpnChallenge(a.conn, a.ctx.acme, a.ctx.hardStop, a.record, sniffed.first)
  ) {
    return null;
  }
  const route = routeOf(a, sniffed);
  if ("end" in route) {
    if (sniffed.protocol === "tls") await sendQuietly(a.conn, ALERT_UNRECOGNIZED_NAME);
    return route;
  }
  return await act(a, sniffed, route);
}

/**
 * What the sniffer's result means for the connection: the facts routing takes, or how it ended.
 * The record learns what is known even when the connection ends here (the bytes read, a TLS
 * hello's name and ALPN).
 */
function fromSniff(record: OpenAccessRecord, sniffed: SniffResult): Sniffed | Ended {
  switch (sniffed.kind) {
    case "silent":
      return {
        protocol: "silent",
        sni: null,
        alpn: NO_ALPN,
        first: NO_BYTES,
        pending: sniffed.pending,
        idn: false,
      };
    case "closed":
      record.up = sniffed.bytes.length;
      return sniffed.bytes.length === 0 ? CLIENT_CLOSED : CLIENT_CLOSED_EARLY;
    case "timeout":
      record.up = sniffed.bytes.length;
      return { end: "sniff-timeout", detail: `${sniffed.bytes.length} bytes without a verdict` };
    case "too-large":
      record.up = sniffed.bytes.length;
      return { end: "malformed-hello", detail: "client hello too large" };
    case "classified":
      record.up = sniffed.bytes.length;
      return fromVerdict(record, sniffed.verdict, sniffed.bytes);
    default:
      return assertNever(sniffed, "sniff result");
  }
}

/** What the classifier's verdict on the first bytes means for the connection. */
function fromVerdict(record: OpenAccessRecord, v: Verdict, bytes: Uint8Array): Sniffed | Ended {
  switch (v.kind) {
    case "tls-malformed":
      record.protocol = "tls";
      return { end: "malformed-hello", detail: v.reason };
    case "tls":
      record.sni = v.hello.sni;
      record.alpn = v.hello.alpn;
      return {
        protocol: "tls",
        sni: v.hello.sni,
        alpn: v.hello.alpn,
        first: bytes,
        pending: undefined,
        idn: v.hello.idn,
      };
    case "http":
    case "ssh":
    case "unknown":
      return {
        protocol: v.kind,
        sni: null,
        alpn: NO_ALPN,
        first: bytes,
        pending: undefined,
        idn: false,
      };
    default:
      return assertNever(v, "sniff verdict");
  }
}

/**
 * The route the sniffed facts take, or why there is none (a TLS client is then sent an
 * `unrecognized_name` alert by the caller).
 */
function routeOf(a: Accepted, s: Sniffed): RouteConfig | Ended {
  // Sniffed carries the route table's facts (protocol, sni, alpn) itself.
  const decision = a.ctx.table.lookup(s);
  if (decision === null) return NO_ROUTE;
  const route = decision.route;
  a.record.route = route.name;
  if (s.idn && isTerminating(route.action)) {
    // The TLS library refuses a ClientHello whose server name is not in A-labels (it fails the
    // handshake with illegal_parameter), so say why here rather than leave a failed handshake.
    return {
      end: "idn-not-terminated",
      detail: "the client sent the server name as raw UTF-8; TLS is terminated only for names " +
        `sent as A-labels ("${s.sni}", as RFC 6066 §3 asks), passed through otherwise`,
    };
  }
  return route;
}

/**
 * Does what the route says. Returns null when the phase it handed the connection to (terminate,
 * redirect) has written the record's end itself.
 */
async function act(a: Accepted, s: Sniffed, route: RouteConfig): Promise<Ended | null> {
  const action = route.action;
  switch (action.kind) {
    case "reject":
      if (s.protocol === "tls") await sendQuietly(a.conn, ALERT_UNRECOGNIZED_NAME);
      return REJECTED;
    case "redirect":
      await serveRedirect(a, s.first, action);
      return null;
    case "edge":
    case "reencrypt":
      await terminate(a, s, { ctx: a.ctx, route, action, client: a.client, record: a.record });
      return null;
    case "passthrough":
    case "forward":
      return await forward(a, s, a.ctx.backends.get(action.backend)!);
    default:
      return assertNever(action, "route action");
  }
}

/** A relaying route: admit the client to the backend, connect, relay. */
async function forward(a: Accepted, s: Sniffed, backend: Backend): Promise<Ended | null> {
  const record = a.record;
  record.backend = backend.name;
  // Over the backend's per-client cap: the record says so, and the client is closed unanswered.
  const leave = admitToBackend(backend, a.client, record);
  if (leave === null) return null;
  try {
    const connected = await connectUpstream(backend, a.ctx.deadlines, a.ctx.hardStop);
    record.server = connected.server?.config.label ?? null;
    if (!connected.ok) {
      record.detail = connected.detail;
      warnUpstreamFailure(record, connected.failure);
      return { end: connected.failure, detail: connected.detail };
    }
    try {
      return await relayTo(a, s, connected.conn, backend.config.proxyProtocol);
    } finally {
      connected.release();
    }
  } finally {
    leave();
  }
}

/**
 * Writes the opening bytes (PROXY header, sniffed bytes) upstream, then relays both ways. The
 * relay's result (its end, and its byte counts, which go into the record) is the outcome.
 */
async function relayTo(
  a: Accepted,
  s: Sniffed,
  upstream: Deno.TcpConn,
  proxyProtocol: "off" | "v1" | "v2",
): Promise<Ended> {
  try {
    const header = proxyProtocol === "off"
      ? null
      : encodeProxyHeader(proxyProtocol, a.client, a.destination ?? peerAddress(a.conn.localAddr));
    const opening = header === null ? s.first : concat(header, s.first);
    if (opening.length > 0) await writeAll(upstream, opening);
  } catch {
    closeQuietly(upstream);
    return {
      end: "upstream-reset",
      detail: "the server closed before the first bytes were written",
    };
  }
  const result = await relay(a.conn, upstream, {
    idleTimeout: a.ctx.listener.idleTimeout,
    pending: s.pending,
    deadlines: a.ctx.deadlines,
    stopped: a.ctx.hardStop,
  });
  a.record.up += result.up;
  a.record.down += result.down;
  return result;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

async function sendQuietly(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, bytes);
  } catch {
    // The client is already gone; the access record says how the connection ended.
  }
}
