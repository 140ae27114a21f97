/**
 * The records a connection and a request leave behind, for the access log, metrics, the status
 * page and tests. A leaf module: every part of the data path writes these, so they depend on
 * nothing in it.
 *
 * @module
 */

import type { Protocol } from "../../config/types.ts";

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
  end: string;
  /** A short explanation for abnormal ends (a malformed hello's reason, a connect error). */
  detail: string | null;
  /** HTTP requests answered on this connection (redirect listeners), else null. */
  requests: number | null;
}

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
  end: string;
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
