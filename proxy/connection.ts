/**
 * One accepted connection, from accept to the access log line:
 * sniff → classify → route → connect → relay → log.
 * Each phase is a function; {@link handleConnection} runs them in order, owns the cleanup and
 * writes the one access record. Nothing thrown here reaches the accept loop.
 *
 * @module
 */

import { formatHostPort } from "../config/address.ts";
import type { Protocol, RouteConfig } from "../config/types.ts";
import type { ListenerContext } from "./context.ts";
import type { AccessRecord } from "./observe/records.ts";
import { ALERT_DECODE_ERROR, ALERT_UNRECOGNIZED_NAME } from "./sniff/classify.ts";
import { log } from "./observe/log.ts";
import { localCause, noteLocalError } from "./backends/local_errors.ts";
import { closeQuietly, noDelay, type PeerAddress, peerAddress, writeAll } from "./net.ts";
import { encodeProxyHeader } from "./sniff/proxy_protocol.ts";
import { serveRedirect } from "./redirect.ts";
import { answerTlsAlpnChallenge } from "./tls/acme_challenges.ts";
import { terminate } from "./tls/terminate.ts";
import { type PendingRead, relay } from "./relay.ts";
import { sniff, type SniffResult } from "./sniff/sniff.ts";
import { connectUpstream, warnUpstreamFailure } from "./backends/upstream.ts";
import type { Backend } from "./backends/backend.ts";
import { admitToBackend } from "./limits.ts";

let connectionCounter = 0;
/** What is replayed upstream when nothing was read first (shared: nobody writes into it). */
const NO_BYTES = new Uint8Array(0);

function newRecord(ctx: ListenerContext, client: PeerAddress): AccessRecord {
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
    end: "",
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
  why: string,
  detail: string | null = null,
  up = 0,
): void {
  const record = newRecord(ctx, client);
  record.end = why;
  record.detail = detail;
  record.up = up;
  closeQuietly(conn);
  ctx.onAccess(record);
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
  noDelay(conn);
  try {
    await run(conn, ctx, client, record, destination);
  } catch (e) {
    // A bug or an unexpected socket error: log it once with context, never to the client.
    record.detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    // Out of descriptors (the hop to the internal TLS listener, say): a local problem, logged
    // once per interval rather than once per connection.
    const cause = localCause(e);
    if (cause !== null) {
      record.end ||= "local-resource";
      noteLocalError(cause, "connection", { listener: record.listener });
      return;
    }
    record.end ||= "internal-error";
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
    ctx.onAccess(record);
  }
}

async function run(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  client: PeerAddress,
  record: AccessRecord,
  destination: PeerAddress | undefined,
): Promise<void> {
  const table = ctx.table;
  let first: Uint8Array = NO_BYTES;
  let pending: PendingRead | undefined;
  let protocol: Protocol;
  let idn = false;
  if (!table.sniff) {
    // Only a catch-all route: forward at once, so server-speaks-first protocols work.
    protocol = "unknown";
  } else {
    const sniffed = await sniff(conn, ctx.listener.sniff, ctx.deadlines);
    const verdict = sniffOutcome(sniffed, record);
    if (verdict === null) {
      if (record.end === "malformed-hello") await sendQuietly(conn, ALERT_DECODE_ERROR);
      return;
    }
    protocol = verdict.protocol;
    first = verdict.first;
    pending = verdict.pending;
    idn = verdict.idn;
  }
  record.protocol = protocol;
  // TLS-ALPN-01 validation of a name edgemux orders for, whatever that name's route is.
  if (ctx.acme && await answerTlsAlpnChallenge(conn, ctx.acme, ctx.hardStop, record, first)) return;
  const decision = table.lookup({ protocol, sni: record.sni, alpn: record.alpn });
  if (decision === null) {
    record.end = "no-route";
    if (protocol === "tls") await sendQuietly(conn, ALERT_UNRECOGNIZED_NAME);
    return;
  }
  const route = decision.route;
  record.route = route.name;
  if (idn && (route.action.kind === "edge" || route.action.kind === "reencrypt")) {
    // The TLS library refuses a ClientHello whose server name is not in A-labels (it fails the
    // handshake with illegal_parameter), so say why here rather than leave a failed handshake.
    record.end = "idn-not-terminated";
    record.detail = "the client sent the server name as raw UTF-8; TLS is terminated only " +
      `for names sent as A-labels ("${record.sni}", as RFC 6066 §3 asks), passed through otherwise`;
    await sendQuietly(conn, ALERT_UNRECOGNIZED_NAME);
    return;
  }
  await act(conn, ctx, client, record, route, first, pending, destination);
}

/** Turns a sniff result into what routing needs, or null (with `record.end` set) to stop. */
function sniffOutcome(
  sniffed: SniffResult,
  record: AccessRecord,
): { protocol: Protocol; first: Uint8Array; pending?: PendingRead; idn: boolean } | null {
  if (sniffed.kind === "silent") {
    return { protocol: "silent", first: NO_BYTES, pending: sniffed.pending, idn: false };
  }
  record.up = sniffed.bytes.length;
  switch (sniffed.kind) {
    case "closed":
      record.end = sniffed.bytes.length === 0 ? "client-closed" : "client-closed-early";
      return null;
    case "timeout":
      record.end = "sniff-timeout";
      record.detail = `${sniffed.bytes.length} bytes without a verdict`;
      return null;
    case "too-large":
      record.end = "malformed-hello";
      record.detail = "client hello too large";
      return null;
    case "classified": {
      const v = sniffed.verdict;
      if (v.kind === "tls-malformed") {
        record.protocol = "tls";
        record.end = "malformed-hello";
        record.detail = v.reason;
        return null;
      }
      if (v.kind === "tls") {
        record.sni = v.hello.sni;
        record.alpn = v.hello.alpn;
      }
      return { protocol: v.kind, first: sniffed.bytes, idn: v.kind === "tls" && v.hello.idn };
    }
  }
}

async function act(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  client: PeerAddress,
  record: AccessRecord,
  route: RouteConfig,
  first: Uint8Array,
  pending: PendingRead | undefined,
  destination: PeerAddress | undefined,
): Promise<void> {
  const action = route.action;
  switch (action.kind) {
    case "reject":
      record.end = "rejected";
      if (record.protocol === "tls") await sendQuietly(conn, ALERT_UNRECOGNIZED_NAME);
      return;
    case "redirect":
      await serveRedirect(conn, first, action, ctx, client, record);
      return;
    case "edge":
    case "reencrypt":
      await terminate(conn, ctx, { ctx, route, action, client, record }, first, pending);
      return;
    case "passthrough":
    case "forward": {
      const backend = ctx.backends.get(action.backend)!;
      record.backend = action.backend;
      const leave = admitToBackend(backend, client, record);
      if (leave === null) return;
      try {
        await connectAndRelay(conn, ctx, client, record, backend, first, pending, destination);
      } finally {
        leave();
      }
      return;
    }
  }
}

async function connectAndRelay(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  client: PeerAddress,
  record: AccessRecord,
  backend: Backend,
  first: Uint8Array,
  pending: PendingRead | undefined,
  destination: PeerAddress | undefined,
): Promise<void> {
  const connected = await connectUpstream(backend, ctx.deadlines, ctx.hardStop);
  record.server = connected.server?.config.label ?? null;
  if (!connected.ok) {
    record.end = connected.failure;
    record.detail = connected.detail;
    warnUpstreamFailure(record, connected.failure);
    return;
  }
  try {
    await relayTo(
      conn,
      connected.conn,
      backend.config.proxyProtocol,
      client,
      destination,
      first,
      pending,
      ctx,
      record,
    );
  } finally {
    connected.release();
  }
}

/** Writes the opening bytes (PROXY header, sniffed bytes) upstream, then relays both ways. */
async function relayTo(
  conn: Deno.TcpConn,
  upstream: Deno.TcpConn,
  proxyProtocol: "off" | "v1" | "v2",
  client: PeerAddress,
  destination: PeerAddress | undefined,
  first: Uint8Array,
  pending: PendingRead | undefined,
  ctx: ListenerContext,
  record: AccessRecord,
): Promise<void> {
  try {
    const header = proxyProtocol === "off"
      ? null
      : encodeProxyHeader(proxyProtocol, client, destination ?? peerAddress(conn.localAddr));
    const opening = header === null ? first : concat(header, first);
    if (opening.length > 0) await writeAll(upstream, opening);
  } catch {
    closeQuietly(upstream);
    record.end = "server-reset";
    record.detail = "the server closed before the first bytes were written";
    return;
  }
  const result = await relay(conn, upstream, {
    idleTimeout: ctx.listener.idleTimeout,
    pending,
    deadlines: ctx.deadlines,
    stopped: ctx.hardStop,
  });
  record.up += result.up;
  record.down += result.down;
  record.end = result.end;
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
