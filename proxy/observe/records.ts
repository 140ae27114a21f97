/**
 * The records a connection and a request leave behind, for the access log, metrics, the status
 * page and tests. A leaf module: every part of the data path writes these, so they depend on
 * nothing in it.
 *
 * @module
 */

import type { Protocol } from "../../config/types.ts";

/**
 * Which side made a connection or a request end (Pingora's error source): the client
 * (`downstream`), the backend server (`upstream`), or edgemux itself (`proxy`: its routes,
 * caps, timers, certificates and its own faults).
 */
export type EndSource = "downstream" | "upstream" | "proxy";

/**
 * The ends caused by the backend's side, the same for a connection and for a request: its server
 * closed, reset, refused, timed out, could not be reached or failed TLS, answered with something
 * that is not HTTP, or no server could take the connection.
 */
export type UpstreamEnd =
  | "upstream-closed"
  | "upstream-reset"
  | "upstream-refused"
  | "upstream-timeout"
  | "upstream-unreachable"
  | "upstream-tls"
  | "upstream-invalid"
  | "upstream-limit"
  | "no-server-up"
  | "server-full";

/**
 * How a connection ended: the access log's `end`, the `end` label of `edgemux_connections_total`.
 * Client-side ends are named `client-*`, server-side ends `upstream-*` (docs/metrics.md says what
 * each means).
 */
export type EndReason =
  | "client-closed"
  | "client-closed-early"
  | "client-reset"
  | "client-timeout"
  | "sniff-timeout"
  | "malformed-hello"
  | "handshake-timeout"
  | "idn-not-terminated"
  | "proxy-untrusted"
  | "proxy-header-missing"
  | "proxy-header-malformed"
  | "proxy-header-timeout"
  | "request-timeout"
  | "keepalive-timeout"
  | "bad-request"
  | "bad-body"
  | UpstreamEnd
  | "no-route"
  | "rejected"
  | "redirected"
  | "acme-answered"
  | "acme-forwarded"
  | "acme-tls-alpn-01"
  | "acme-tls-alpn-01-failed"
  | "no-certificate"
  | "limit-total"
  | "limit-listener"
  | "limit-client"
  | "rate-limited"
  | "limit-backend-client"
  | "idle-timeout"
  | "shutdown"
  | "local-resource"
  | "internal-error";

/** The {@link UpstreamEnd}s, in one place for connections and requests alike. */
const UPSTREAM_ENDS: Readonly<Record<UpstreamEnd, "upstream">> = {
  "upstream-closed": "upstream",
  "upstream-reset": "upstream",
  "upstream-refused": "upstream",
  "upstream-timeout": "upstream",
  "upstream-unreachable": "upstream",
  "upstream-tls": "upstream",
  "upstream-invalid": "upstream",
  "upstream-limit": "upstream",
  "no-server-up": "upstream",
  "server-full": "upstream",
};

/**
 * Every way a connection can end, with the side that ended it. Client-side ends are named
 * `client-*` (and the sniffing, PROXY header and request phases that wait on the client);
 * server-side ends are named `upstream-*` (and the backend's `no-server-up`, `server-full`).
 * Adding an end is one entry in the union above and one here (the compiler asks for both);
 * docs/metrics.md lists them (a test compares).
 */
const CONNECTION_ENDS: Readonly<Record<EndReason, EndSource>> = {
  "client-closed": "downstream",
  "client-closed-early": "downstream",
  "client-reset": "downstream",
  "client-timeout": "downstream",
  "sniff-timeout": "downstream",
  "malformed-hello": "downstream",
  "handshake-timeout": "downstream",
  "idn-not-terminated": "downstream",
  "proxy-untrusted": "downstream",
  "proxy-header-missing": "downstream",
  "proxy-header-malformed": "downstream",
  "proxy-header-timeout": "downstream",
  "request-timeout": "downstream",
  "keepalive-timeout": "downstream",
  "bad-request": "downstream",
  "bad-body": "downstream",
  ...UPSTREAM_ENDS,
  "no-route": "proxy",
  "rejected": "proxy",
  "redirected": "proxy",
  "acme-answered": "proxy",
  "acme-forwarded": "proxy",
  "acme-tls-alpn-01": "proxy",
  "acme-tls-alpn-01-failed": "proxy",
  "no-certificate": "proxy",
  "limit-total": "proxy",
  "limit-listener": "proxy",
  "limit-client": "proxy",
  "rate-limited": "proxy",
  "limit-backend-client": "proxy",
  "idle-timeout": "proxy",
  "shutdown": "proxy",
  "local-resource": "proxy",
  "internal-error": "proxy",
};

/** Every {@link EndReason}, in the order above. */
export const END_REASONS: readonly EndReason[] = Object.freeze(
  Object.keys(CONNECTION_ENDS) as EndReason[],
);

/** The side that caused a connection's end. */
export function endSource(end: EndReason): EndSource {
  return CONNECTION_ENDS[end];
}

/** How an HTTP request ended: the request log's `end`. */
export type RequestEnd =
  | "ok"
  | "upgraded"
  | "not-found"
  | "redirected"
  | "acme-answered"
  | "misdirected"
  | "bad-request"
  | "bad-body"
  | "request-timeout"
  | "client-closed"
  | "client-timeout"
  | UpstreamEnd
  | "local-resource"
  | "internal-error";

/**
 * Every way an HTTP request can end, with the side that ended it: the ends a request shares with
 * connections, and its own (`ok`, `upgraded`, `not-found`, `misdirected`; a redirect listener's
 * `redirected` and `acme-answered`).
 */
const REQUEST_ENDS: Readonly<Record<RequestEnd, EndSource>> = {
  "ok": "proxy",
  "upgraded": "proxy",
  "not-found": "proxy",
  "redirected": "proxy",
  "acme-answered": "proxy",
  "misdirected": "downstream",
  "bad-request": "downstream",
  "bad-body": "downstream",
  "request-timeout": "downstream",
  "client-closed": "downstream",
  "client-timeout": "downstream",
  ...UPSTREAM_ENDS,
  "local-resource": "proxy",
  "internal-error": "proxy",
};

/** Every {@link RequestEnd}. */
export const REQUEST_END_REASONS: readonly RequestEnd[] = Object.freeze(
  Object.keys(REQUEST_ENDS) as RequestEnd[],
);

/** The ends a request and a connection share (a forwarded request's failure ends both). */
export type SharedEnd = RequestEnd & EndReason;

/** The side that caused a request's end. */
export function requestEndSource(end: RequestEnd): EndSource {
  return REQUEST_ENDS[end];
}

/** One finished connection, as written to the access log. */
export interface AccessRecord {
  /** A number unique within this process, to tie log lines together. */
  conn: number;
  /** The name of the listener that accepted the connection. */
  listener: string;
  /** The client's address, `ip:port`. */
  client: string;
  /** What the connection was found to speak; null if it ended before that was known. */
  protocol: Protocol | null;
  /** The server name the TLS ClientHello asked for; null without TLS or without SNI. */
  sni: string | null;
  /** The ALPN protocols the ClientHello offered, in its order; empty when none. */
  alpn: string[];
  /** The name of the route that took the connection; null when none matched. */
  route: string | null;
  /** The backend the connection was relayed or proxied to; null when it reached none. */
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
  end: EndReason;
  /** A short explanation for abnormal ends (a malformed hello's reason, a connect error). */
  detail: string | null;
  /** HTTP requests answered on this connection (redirect listeners), else null. */
  requests: number | null;
}

/**
 * An access record while its connection runs: `end` is null until a phase decides it, and is
 * always set before the record is handed to an {@link AccessObserver}.
 */
export type OpenAccessRecord = Omit<AccessRecord, "end"> & { end: EndReason | null };

/** Receives every access record (the access log, metrics, tests). */
export type AccessObserver = (record: AccessRecord) => void;

/** One HTTP request as written to the access log. */
export interface RequestRecord {
  /** The connection it arrived on (ties it to the connection's access line). */
  conn: number;
  /** The name of the listener the connection arrived on. */
  listener: string;
  /** The client's address, `ip:port` (from the PROXY header when the listener reads one). */
  client: string;
  /** `h1` or `h2`. */
  http: "h1" | "h2";
  /** The request method, as sent. */
  method: string;
  /** The request's host, from `:authority` or `Host`; null when it carried none. */
  host: string | null;
  /** The request target's path, with any query. */
  path: string;
  /** The response status code sent to the client; 0 when no response was sent. */
  status: number;
  /** The HTTP route's name. */
  route: string | null;
  /** The backend the request was sent to; null when edgemux answered it itself. */
  backend: string | null;
  /** The server that answered, `host:port`; null when the request was not forwarded. */
  server: string | null;
  /** Request body bytes received from the client. */
  bytes_in: number;
  /** Response body bytes sent to the client. */
  bytes_out: number;
  /** From the request head to the end of the response. */
  ms: number;
  /** From sending the request upstream to the response head; null when not forwarded. */
  upstream_ms: number | null;
  /** `ok`, `client-closed`, `upstream-timeout`, `not-found`, … */
  end: RequestEnd;
  /** A short explanation for abnormal ends (a parse error, a connect error); null otherwise. */
  detail: string | null;
}

/** Receives every request record. */
export type RequestObserver = (record: RequestRecord) => void;

/**
 * Where a request arrived: its connection's number, listener and client address. The same for
 * every request on a connection, so made once per connection.
 */
export interface RequestOrigin {
  conn: number;
  listener: string;
  client: string;
}

/** A fresh record for one request, to be filled in as the request goes. */
export function blankRequestRecord(
  origin: RequestOrigin,
  http: "h1" | "h2",
  method: string,
  host: string | null,
  path: string,
): RequestRecord {
  return {
    conn: origin.conn,
    listener: origin.listener,
    client: origin.client,
    http,
    method,
    host,
    path,
    status: 0,
    route: null,
    backend: null,
    server: null,
    bytes_in: 0,
    bytes_out: 0,
    ms: 0,
    upstream_ms: null,
    end: "ok",
    detail: null,
  };
}
