/**
 * `edge` and `reencrypt` routes: the outer half relays the client's bytes into the internal TLS
 * listener (see terminator.ts); the inner half, once the handshake is done, serves HTTP/2 or
 * HTTP/1.1 (by ALPN) or relays the decrypted stream to a TCP backend.
 *
 * @module
 */

import type { RouteConfig, TerminateAction } from "../config/types.ts";
import type { AccessRecord, ListenerContext } from "./context.ts";
import { serveHttp1 } from "./http/h1.ts";
import { serveHttp2 } from "./http/h2.ts";
import { UPSTREAMS_PER_CONNECTION, UpstreamSet } from "./http/pool.ts";
import { BufferedReader } from "./http/reader.ts";
import type { HttpSession } from "./http/session.ts";
import { closeQuietly, type PeerAddress, writeAll } from "./net.ts";
import { type PendingRead, relay } from "./relay.ts";

/** What the inner half learns about a terminated connection. */
export interface TerminatedInfo {
  ctx: ListenerContext;
  route: RouteConfig;
  action: TerminateAction;
  client: PeerAddress;
  record: AccessRecord;
  /**
   * Set by the inner half, called by the outer one when the client's connection is gone: an
   * HTTP/1.1 response waiting on its backend writes nothing to the client, so it would not
   * notice by itself until the backend sent more.
   */
  onClientGone?: () => void;
}

/** The outer half: hand the client's TLS bytes to the internal listener and relay. */
export async function terminate(
  conn: Deno.TcpConn,
  ctx: ListenerContext,
  info: TerminatedInfo,
  first: Uint8Array,
  pending: PendingRead | undefined,
): Promise<void> {
  const record = info.record;
  const terminator = ctx.terminator();
  if (terminator === null) {
    record.end = "no-certificate";
    return;
  }
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
    record.end = "internal-error";
    record.detail = "internal TLS listener closed before the hello was written";
    return;
  }
  const result = await relay(conn, inner, {
    // The internal server enforces the HTTP timeouts; this relay must not cut a request that
    // waits on a slow backend (no bytes move meanwhile), so it allows the longest of them.
    idleTimeout: outerIdleTimeout(ctx),
    pending,
    deadlines: ctx.deadlines,
    stopped: ctx.hardStop,
    closeWhenServerEnds: true,
  });
  record.up += result.up;
  record.down += result.down;
  // From the client's side the inner half is "the server".
  record.end = result.end;
  info.onClientGone?.();
}

/** The idle bound of the client ↔ internal-listener relay of a terminated connection. */
function outerIdleTimeout(ctx: ListenerContext): number {
  let longest = ctx.http.keepaliveTimeout;
  for (const b of ctx.backends.values()) longest = Math.max(longest, b.config.responseTimeout);
  return ctx.listener.idleTimeout + longest;
}

/** The inner half: runs once the internal listener has finished the TLS handshake. */
export async function serveTerminated(
  conn: Deno.TlsConn,
  alpn: string | null,
  info: TerminatedInfo,
): Promise<void> {
  const { ctx, action, record } = info;
  if (action.upstream.kind === "tcp") {
    const pool = ctx.pools.get(action.upstream.backend)!;
    record.backend = action.upstream.backend;
    const got = await pool.acquire(null, ctx.hardStop);
    if ("failure" in got) {
      record.server = got.server?.config.label ?? null;
      record.detail = `${got.failure}: ${got.detail}`;
      return;
    }
    record.server = got.up.server.config.label;
    await relay(conn, got.up.conn, {
      idleTimeout: ctx.listener.idleTimeout,
      deadlines: ctx.deadlines,
    });
    pool.release(got.up);
    closeQuietly(got.up.conn);
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
    connId: record.conn,
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
    if (alpn === "h2") await serveHttp2(conn, session);
    else await serveHttp1(conn, new BufferedReader(conn, ctx.deadlines, 4096), session);
  } finally {
    session.upstreams.close();
  }
}
