/**
 * What a connection needs from the running proxy, gathered into one immutable value per
 * listener and config generation: a reload builds new contexts, and every open connection
 * keeps the one it started with.
 *
 * @module
 */

import type {
  HttpConfig,
  ListenerConfig,
  Protocol,
  RouteConfig,
  TerminateAction,
} from "../config/types.ts";
import type { RouteTable } from "../routing/route_table.ts";
import type { CidrSet } from "../routing/cidr.ts";
import type { HttpRouter } from "../routing/http_router.ts";
import type { Backend } from "./backends/backend.ts";
import type { BackendPool } from "./http/pool.ts";
import type {
  AccessObserver,
  EndReason,
  OpenAccessRecord,
  RequestObserver,
} from "./observe/records.ts";
import type { Terminator, TerminatorClient } from "./tls/terminator.ts";
import type { PeerAddress } from "./net.ts";
import type { DeadlineSet } from "./deadlines.ts";
import type { AcmeChallenges } from "./tls/acme_challenges.ts";
import type { PendingRead } from "./relay.ts";

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
  /** The ACME challenges edgemux answers itself (`certificates.acme`); absent when off. */
  readonly acme?: AcmeChallenges | null;
}

/**
 * One accepted connection, as every phase of proxy/connection.ts sees it: made once at accept and
 * never changed. `record` is the connection's one accumulator (bytes, names, the route), whose
 * `end` the top level writes from what the phases return.
 */
export interface Accepted {
  readonly conn: Deno.TcpConn;
  readonly ctx: ListenerContext;
  /** The client: the peer, or the client a PROXY header named. */
  readonly client: PeerAddress;
  /** The address the client connected to when a PROXY header named it; else undefined. */
  readonly destination: PeerAddress | undefined;
  readonly record: OpenAccessRecord;
}

/**
 * What sniffing found: the facts routing takes (`protocol`, `sni`, `alpn`), and the bytes already
 * read, to be replayed to whoever takes the connection.
 */
export interface Sniffed {
  readonly protocol: Protocol;
  /** The normalised server name from the ClientHello, or null. */
  readonly sni: string | null;
  /** The ALPN protocols the ClientHello offered. */
  readonly alpn: readonly string[];
  /** Every byte read so far, from the first. */
  readonly first: Uint8Array;
  /** A read of the client still in flight (a `silent` client), to be taken over. */
  readonly pending: PendingRead | undefined;
  /** The ClientHello sent its server name as raw UTF-8 (not A-labels). */
  readonly idn: boolean;
}

/** How a phase ended a connection: the access record's `end`, and its `detail` when it has one. */
export interface Ended {
  readonly end: EndReason;
  readonly detail?: string | null;
}

/** What the inner half learns about a terminated connection. */
export interface TerminatedInfo extends TerminatorClient {
  ctx: ListenerContext;
  route: RouteConfig;
  action: TerminateAction;
  client: PeerAddress;
  record: OpenAccessRecord;
  /**
   * Set by the inner half, called by the outer one when the client's connection is gone: an
   * HTTP/1.1 response waiting on its backend writes nothing to the client, so it would not
   * notice by itself until the backend sent more.
   */
  onClientGone?: () => void;
}
