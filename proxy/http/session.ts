/**
 * What the HTTP engines (HTTP/1.1 and HTTP/2) share about one terminated connection, and the
 * per-request routing decision they both make the same way.
 *
 * @module
 */

import type { HttpRouteConfig, RouteConfig } from "../../config/types.ts";
import type { HttpRouter } from "../../routing/http_router.ts";
import { normalizeHost } from "../../routing/http_router.ts";
import { normalizePath, pathRefusal } from "../../routing/path.ts";
import { covers } from "../../routing/hosts.ts";
import type { ListenerContext } from "../context.ts";
import {
  blankRequestRecord,
  type RequestEnd,
  type RequestObserver,
  type RequestOrigin,
  type RequestRecord,
} from "../observe/records.ts";
import type { ForwardingFacts } from "./wire/upstream_head.ts";
import type { PeerAddress } from "../net.ts";
import type { BackendPool, UpstreamConn, UpstreamSet } from "./pool.ts";

/** A fresh record for a request on `session`, to be filled in as the request goes. */
export function newRequestRecord(
  session: HttpSession,
  http: "h1" | "h2",
  method: string,
  host: string | null,
  path: string,
): RequestRecord {
  return blankRequestRecord(session.origin, http, method, host, path);
}

/** A terminated connection, as both HTTP engines see it. */
export interface HttpSession {
  readonly ctx: ListenerContext;
  /** The listener route (edge or reencrypt) the connection's SNI chose. */
  readonly tlsRoute: RouteConfig;
  readonly router: HttpRouter;
  readonly pools: ReadonlyMap<string, BackendPool>;
  readonly client: PeerAddress;
  readonly sni: string | null;
  /** The connection's number in the access log, listener and client, for its request records. */
  readonly origin: RequestOrigin;
  /**
   * The client as the forwarding fields tell it, the same for every request on the connection
   * (`trusted`: it is a configured proxy, whose `X-Forwarded-For` is kept).
   */
  readonly forwarding: ForwardingFacts;
  readonly onRequest: RequestObserver;
  /** The upstream connection of the HTTP/1.1 request in progress, closed if the client leaves. */
  upstream: UpstreamConn | null;
  /**
   * This connection's own upstream connections: never shared with another client connection
   * (docs/security.md), closed when this one ends.
   */
  readonly upstreams: UpstreamSet;
}

/** The outcome of routing one request. */
export type RequestDecision =
  | {
    kind: "respond";
    status: number;
    end: RequestEnd;
    detail: string | null;
    host: string | null;
  }
  | {
    kind: "redirect";
    route: HttpRouteConfig;
    location: string;
    status: number;
    host: string;
  }
  | {
    kind: "forward";
    route: HttpRouteConfig;
    pool: BackendPool;
    upstreamPath: string;
    host: string;
  };

/**
 * Routes a request: host and path checks, the 421 rule, the HTTP router.
 *
 * @param authority The request's authority (Host or `:authority`), as received.
 * @param target The path and query as received.
 */
export function decide(
  session: HttpSession,
  authority: string | null,
  target: string,
): RequestDecision {
  const host = authority === null ? null : normalizeHost(authority);
  if (host === null) {
    // No name, or a port that names no TCP port (routing/http_router.ts).
    const detail = authority === null || authority === "" ? "no host" : "invalid host";
    return { kind: "respond", status: 400, end: "bad-request", detail, host };
  }
  // The path routed is the path forwarded (routing/path.ts says why, docs/paths.md shows it).
  const mode = session.ctx.http.pathNormalization;
  const path = normalizePath(target, mode);
  if (path === null) {
    const detail = `invalid path: ${pathRefusal(target, mode)}`;
    return { kind: "respond", status: 400, end: "bad-request", detail, host };
  }
  // RFC 9110 §15.5.20: a connection set up for one name must not serve another that this TLS
  // route does not cover (HTTP/2 connection reuse, or a Host that disagrees with SNI).
  if (!covers(session.tlsRoute.match.sni, host)) {
    return {
      kind: "respond",
      status: 421,
      end: "misdirected",
      detail: `host ${host} is not served on a connection for ${session.sni ?? "no SNI"}`,
      host,
    };
  }
  const match = session.router.match(host, path);
  if (match === null) return { kind: "respond", status: 404, end: "not-found", detail: null, host };
  const action = match.route.action;
  if (action.kind === "redirect") {
    return {
      kind: "redirect",
      route: match.route,
      location: action.location,
      status: action.status,
      host,
    };
  }
  return {
    kind: "forward",
    route: match.route,
    pool: session.pools.get(action.backend)!,
    upstreamPath: match.upstreamPath,
    host,
  };
}

/** Methods whose requests may be sent twice (RFC 9110 §9.2.2). */
export function isIdempotent(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "TRACE" ||
    method === "PUT" || method === "DELETE";
}
