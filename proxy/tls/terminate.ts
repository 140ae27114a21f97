/**
 * `edge` and `reencrypt` routes. By default the outer half relays the client's bytes into the
 * internal TLS listener (see terminator.ts). With the `node` termination path
 * ({@link TerminationPath}), a client whose ClientHello offers no `h2` (HTTP/1.1 clients,
 * TLS-terminated TCP) has TLS ended on its own socket by `node:tls` instead ({@link terminateHere},
 * node_tls.ts): one socket and no copy through loopback. h2 clients always take the internal
 * listener, whose connections Deno's HTTP/2 server can serve.
 *
 * Either way the inner half ({@link serveTerminated}), once the handshake is done, serves HTTP/2
 * or HTTP/1.1 (by ALPN) or relays the decrypted stream to a TCP backend.
 *
 * @module
 */

import * as tls from "node:tls";
import type { Accepted, ListenerContext, Sniffed, TerminatedInfo } from "../context.ts";
import { serveHttp1 } from "../http/h1.ts";
import { serveHttp2 } from "../http/h2.ts";
import { UPSTREAMS_PER_CONNECTION, UpstreamSet } from "../http/pool.ts";
import { BufferedReader } from "../http/reader.ts";
import type { HttpSession } from "../http/session.ts";
import type { EndReason, OpenAccessRecord } from "../observe/records.ts";
import { closeQuietly, writeAll } from "../net.ts";
import { admitToBackend } from "../limits.ts";
import { warnUpstreamFailure } from "../backends/upstream.ts";
import { Deadline } from "../deadlines.ts";
import { type PendingRead, relay, RelayControl } from "../relay.ts";
import { ClientSocketStream, serverOptions, TlsStreamConn } from "./node_tls.ts";
import type { Terminator } from "./terminator.ts";

/**
 * Which way clients that do not offer h2 are terminated: `hop` (the default) sends them through
 * the internal listener like h2 clients; `node` ends TLS on the client's socket with `node:tls`.
 * Measured on Deno 2.9.6 (docs/deno-runtime.md §5), `node` served kept-alive HTTP/1.1 requests
 * about 10 % faster but cost about 1.7× the CPU per handshake and carried bulk transfers at
 * half the rate, so it is not the default. `EDGEMUX_TERMINATION=node` (when edgemux may read its
 * environment) or {@link useTerminationPath} selects it.
 */
export type TerminationPath = "node" | "hop";

let path: TerminationPath | undefined;

/**
 * `EDGEMUX_TERMINATION=node`, read at the first terminated connection and only when the
 * permission to read it was granted already (never a prompt; the packaged service cannot).
 */
function pathFromEnvironment(): TerminationPath {
  const variable = "EDGEMUX_TERMINATION";
  try {
    if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return "hop";
    return Deno.env.get(variable) === "node" ? "node" : "hop";
  } catch {
    return "hop";
  }
}

/**
 * Chooses the termination path of clients that do not offer h2, for this isolate: the tests that
 * run the terminated suite on the path that is not the default, and A/B measurements.
 */
export function useTerminationPath(p: TerminationPath): void {
  path = p;
}

/** How many connections each path has terminated in this isolate (tests check which ran). */
export const terminatedBy: Record<TerminationPath, number> = { node: 0, hop: 0 };

/** The termination path of clients that do not offer h2, in this isolate. */
export function terminationPath(): TerminationPath {
  return path ??= pathFromEnvironment();
}

/**
 * After the inner half has ended, how long the outer relay may go without a byte before it is
 * closed: long enough for the last bytes still in the loopback socket to reach a slow client,
 * short enough that a client cannot keep a connection edgemux has finished with.
 */
export const AFTER_INNER_ENDED = 5_000;

/**
 * The outer half: hand the client's TLS bytes to the internal listener and relay. Writes how the
 * connection ended into `info.record`.
 */
export async function terminate(
  accepted: Accepted,
  sniffed: Sniffed,
  info: TerminatedInfo,
): Promise<void> {
  const { conn, ctx } = accepted;
  const { first, pending } = sniffed;
  const record = info.record;
  const terminator = ctx.terminator();
  if (terminator === null) {
    record.end = "no-certificate";
    return;
  }
  if (!record.alpn.includes("h2") && terminationPath() === "node") {
    terminatedBy.node++;
    return await terminateHere(conn, ctx, info, first, pending, terminator);
  }
  terminatedBy.hop++;
  let inner: Deno.TcpConn;
  try {
    inner = await terminator.connect(info);
  } catch (e) {
    record.end = "internal-error";
    record.detail = `internal TLS listener: ${e instanceof Error ? e.message : String(e)}`;
    return;
  }
  try {
    if (first.length > 0) await writeAll(inner, first);
  } catch {
    closeQuietly(inner);
    terminator.forget(inner, info);
    record.end = "internal-error";
    record.detail = "internal TLS listener closed before the hello was written";
    return;
  }
  // The handshake deadline is kept here, on the client's own socket: the internal listener
  // cannot close a connection whose handshake has stalled (see terminator.ts), so without this
  // a client that sends its ClientHello and nothing more would hold its connection for the
  // relay's idle timeout.
  const stop = new AbortController();
  const handshake = new Deadline(() => stop.abort());
  ctx.deadlines.arm(handshake, ctx.listener.sniff.timeout);
  info.handshaken = () => ctx.deadlines.disarm(handshake);
  // The relay must not outlive the inner connection: once that has ended, whatever bytes it
  // wrote last are given a short idle bound to reach the client, and then the client is closed.
  const control = new RelayControl();
  info.ended = () => {
    control.tighten(AFTER_INNER_ENDED);
  };
  const result = await relay(conn, inner, {
    // The internal server enforces the HTTP timeouts; this relay must not cut a request that
    // waits on a slow backend (no bytes move meanwhile), so it allows the longest of them.
    idleTimeout: outerIdleTimeout(ctx),
    pending,
    deadlines: ctx.deadlines,
    signal: stop.signal,
    stopped: ctx.hardStop,
    closeWhenServerEnds: true,
    control,
  });
  ctx.deadlines.disarm(handshake);
  terminator.forget(inner, info);
  // From the client's side the inner half is "the server" (unless it said why it ended).
  settle(record, handshake, result, result.end);
  info.onClientGone?.();
}

/**
 * Adds a terminated connection's bytes to its record and sets its end: a handshake that ran out
 * of time says so; otherwise the inner half's own reason stands, or `fallback` when it gave none.
 */
function settle(
  record: OpenAccessRecord,
  handshake: Deadline,
  bytes: { up: number; down: number },
  fallback: EndReason,
): void {
  record.up += bytes.up;
  record.down += bytes.down;
  if (handshake.expired) {
    record.end = "handshake-timeout";
    record.detail = "TLS handshake not finished within sniff.timeout";
  } else {
    record.end ??= fallback;
  }
}

/** The idle bound of the client ↔ internal-listener relay of a terminated connection. */
function outerIdleTimeout(ctx: ListenerContext): number {
  let longest = ctx.http.keepaliveTimeout;
  for (const b of ctx.backends.values()) longest = Math.max(longest, b.config.responseTimeout);
  return ctx.listener.idleTimeout + longest;
}

/** What a client that does not offer h2 is offered (the same as the internal listener, minus h2). */
const HTTP1_ONLY = ["http/1.1"];

/**
 * Ends TLS on the client's own socket with `node:tls`: the certificate is chosen from the SNI the
 * sniffer read (the terminator of the moment holds the current certificates), the handshake
 * has `sniff.timeout` to finish, then the inner half serves the decrypted stream.
 */
async function terminateHere(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  info: TerminatedInfo,
  first: Uint8Array,
  pending: PendingRead | undefined,
  terminator: Terminator<TerminatedInfo>,
): Promise<void> {
  const record = info.record;
  const chosen = terminator.choose(record.sni);
  if (chosen === null) {
    record.end = "no-certificate";
    record.detail = `no certificate for "${record.sni ?? ""}"`;
    return;
  }
  const stream = new ClientSocketStream(conn, first, pending);
  const socket = new tls.TLSSocket(
    stream as never,
    serverOptions(terminator.contexts.get(chosen), HTTP1_ONLY),
  );
  // Mid-handshake there is no TLS session to close: the deadline closes the socket itself.
  const handshake = new Deadline(() => stream.close());
  ctx.deadlines.arm(handshake, ctx.listener.sniff.timeout);
  const secure = await new Promise<boolean>((resolve) => {
    socket.once("secure", () => resolve(true));
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(false));
  });
  ctx.deadlines.disarm(handshake);
  let endedByClient = false;
  if (secure && !handshake.expired) {
    const tlsConn = new TlsStreamConn(socket, stream);
    // The client's socket failing while a response waits on its backend: end that wait.
    stream.once("error", () => info.onClientGone?.());
    stream.once("close", () => {
      if (!tlsConn.closed) info.onClientGone?.();
    });
    try {
      const alpn = typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : null;
      await serveTerminated(tlsConn as unknown as Deno.Conn, alpn, info);
    } catch (e) {
      record.end ||= "internal-error";
      record.detail ??= `terminated connection: ${e instanceof Error ? e.message : String(e)}`;
    }
    endedByClient = tlsConn.endedByClient;
    closeQuietly(tlsConn);
    // The caller closes the client's socket when this returns: let close_notify go out first.
    await stream.socketClosed;
  } else {
    stream.close();
    try {
      socket.destroy();
    } catch {
      // Torn down already.
    }
  }
  const fallback: EndReason = stream.failure !== null
    ? ctx.hardStop.aborted ? "shutdown" : "client-reset"
    : endedByClient
    ? "client-closed"
    : "upstream-closed";
  settle(record, handshake, stream, fallback);
}

/** The inner half: runs once the TLS handshake has finished, on either path. */
export async function serveTerminated(
  conn: Deno.Conn,
  alpn: string | null,
  info: TerminatedInfo,
): Promise<void> {
  const { ctx, action, record } = info;
  if (action.upstream.kind === "tcp") {
    const pool = ctx.pools.get(action.upstream.backend)!;
    record.backend = action.upstream.backend;
    const leave = admitToBackend(ctx.backends.get(action.upstream.backend)!, info.client, record);
    // Over the cap: the record says so, and closing the TLS connection closes the client.
    if (leave === null) return;
    try {
      const got = await pool.acquire(null, ctx.hardStop);
      if ("failure" in got) {
        record.server = got.server?.config.label ?? null;
        record.end = got.failure;
        record.detail = got.detail;
        warnUpstreamFailure(record, got.failure);
        return;
      }
      record.server = got.up.server.config.label;
      await relay(conn, got.up.conn, {
        idleTimeout: ctx.listener.idleTimeout,
        deadlines: ctx.deadlines,
      });
      pool.release(got.up);
      closeQuietly(got.up.conn);
    } finally {
      leave();
    }
    return;
  }
  const session: HttpSession = {
    upstream: null,
    upstreams: new UpstreamSet(UPSTREAMS_PER_CONNECTION),
    ctx,
    tlsRoute: info.route,
    router: ctx.routers.get(info.route)!,
    pools: ctx.pools,
    client: info.client,
    sni: record.sni,
    origin: { conn: record.conn, listener: record.listener, client: info.client.ip },
    forwarding: {
      clientIp: info.client.ip,
      proto: "https",
      trusted: ctx.trustedProxies.contains(info.client.ip),
    },
    onRequest: ctx.onRequest,
  };
  info.onClientGone = () => {
    closeQuietly(conn);
    if (session.upstream !== null) closeQuietly(session.upstream.conn);
  };
  try {
    if (alpn === "h2") await serveHttp2(conn as Deno.TlsConn, session);
    else await serveHttp1(conn, new BufferedReader(conn, ctx.deadlines, 4096), session);
  } finally {
    session.upstreams.close();
  }
}
