/**
 * What a connection needs from the running proxy, gathered into one immutable value per
 * listener and config generation: a reload builds new contexts, and every open connection
 * keeps the one it started with.
 *
 * @module
 */

import type { HttpConfig, ListenerConfig, Protocol, RouteConfig } from "../config/types.ts";
import type { RouteTable } from "../routing/route_table.ts";
import type { CidrSet } from "../routing/cidr.ts";
import type { HttpRouter } from "../routing/http_router.ts";
import type { Backend } from "./backend.ts";
import type { BackendPool } from "./http/pool.ts";
import type { RequestObserver } from "./http/session.ts";
import type { TerminatedInfo } from "./terminate.ts";
import type { Terminator } from "./terminator.ts";
import type { DeadlineSet } from "./deadlines.ts";

/** One finished connection, as written to the access log. */
export interface AccessRecord {
  /** A number unique within this process, to tie log lines together. */
  conn: number;
  listener: string;
  /** The client's address, `ip:port`. */
  client: string;
  /** What the connection was found to speak; null if it ended before that was known. */
  protocol: Protocol | null;
  sni: string | null;
  alpn: string[];
  route: string | null;
  backend: string | null;
  /** The server that took the connection, `host:port`. */
  server: string | null;
  /** Bytes from the client, including any the sniffer read. */
  up: number;
  /** Bytes to the client. */
  down: number;
  /** From accept to close. */
  ms: number;
  /** How it ended: `client-closed`, `no-route`, `upstream-refused`, `sniff-timeout`, … */
  end: string;
  /** A short explanation for abnormal ends (a malformed hello's reason, a connect error). */
  detail: string | null;
  /** HTTP requests answered on this connection (redirect listeners), else null. */
  requests: number | null;
}

/** Receives every access record (the access log, metrics, tests). */
export type AccessObserver = (record: AccessRecord) => void;

/** Everything a connection on one listener needs, fixed for its lifetime. */
export interface ListenerContext {
  readonly listener: ListenerConfig;
  readonly table: RouteTable;
  readonly backends: ReadonlyMap<string, Backend>;
  /** Keep-alive connection pools of the backends, for HTTP routes. */
  readonly pools: ReadonlyMap<string, BackendPool>;
  readonly http: HttpConfig;
  /** The port a listener is actually bound on (binds may ask for port 0). */
  readonly boundPort: (listener: string) => number | null;
  readonly onAccess: AccessObserver;
  /** Receives one record per HTTP request on terminated connections. */
  readonly onRequest: RequestObserver;
  /** The internal TLS listener of the moment (it is replaced when certificates change). */
  readonly terminator: () => Terminator<TerminatedInfo> | null;
  /** The compiled HTTP routes of each edge/reencrypt route. */
  readonly routers: ReadonlyMap<RouteConfig, HttpRouter>;
  /** Clients whose forwarding headers are kept (http.trusted_proxies). */
  readonly trustedProxies: CidrSet;
  /**
   * The listener's `proxy_protocol.accept_from`: only these may connect, and each must send a
   * PROXY header first. Null when the listener takes no PROXY headers.
   */
  readonly proxySources: CidrSet | null;
  /** Read deadlines of this proxy; a graceful stop ends its idle waits. */
  readonly deadlines: DeadlineSet;
  /** Aborted when a graceful stop begins: idle keep-alive connections close at once. */
  readonly softStop: AbortSignal;
  /** Aborted when a graceful stop runs out of time: every open connection closes. */
  readonly hardStop: AbortSignal;
}
