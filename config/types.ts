/**
 * The validated config: every default filled in, every reference checked, durations in
 * milliseconds and sizes in bytes. Nothing here is YAML any more; `parseConfig` builds it.
 *
 * @module
 */

import type { HostPort } from "./address.ts";
import type { SourcePosition } from "./errors.ts";

/** Log levels, from most to least verbose. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The whole config. */
export interface Config {
  /** The files it was read from, in merge order. */
  files: string[];
  log: LogConfig;
  /** How long a graceful stop waits for open connections before closing them. */
  shutdownTimeout: number;
  http: HttpConfig;
  backends: Map<string, BackendConfig>;
  listeners: ListenerConfig[];
}

/** Logging. */
export interface LogConfig {
  level: LogLevel;
  format: "text" | "json";
  /** One access line per connection. */
  access: boolean;
}

/** Limits and timeouts for the HTTP that edgemux speaks itself. */
export interface HttpConfig {
  /** From the first byte of a request to the end of its head. */
  requestHeadTimeout: number;
  /** How long an idle keep-alive connection waits for its next request. */
  keepaliveTimeout: number;
  /** The largest request head accepted (request line plus headers). */
  maxHeadSize: number;
  /** The most header fields a request may carry. */
  maxHeaders: number;
}

/** A named group of servers. */
export interface BackendConfig {
  name: string;
  servers: ServerConfig[];
  connectTimeout: number;
  /** A PROXY protocol header sent to each server before any client byte. */
  proxyProtocol: "off" | "v1" | "v2";
  position: SourcePosition;
}

/** One server of a backend. */
export interface ServerConfig {
  address: HostPort;
  /** `host:port`, as shown in logs. */
  label: string;
}

/** One listener: the addresses it binds and what it does with what arrives there. */
export interface ListenerConfig {
  name: string;
  binds: HostPort[];
  sniff: SniffConfig;
  /** A relayed connection with no bytes either way for this long is closed. */
  idleTimeout: number;
  routes: RouteConfig[];
  position: SourcePosition;
}

/** How long and how much a listener reads to tell what a connection speaks. */
export interface SniffConfig {
  /** The whole sniff, from accept to a decision. */
  timeout: number;
  /**
   * After this long without a first byte, the client counts as `silent` (it waits for the
   * server to speak first, as SSH clients may). `null` when no route matches `silent`.
   */
  silentAfter: number | null;
  /** The most bytes a ClientHello may take. */
  maxHelloSize: number;
}

/** What a connection was found to speak. */
export type Protocol = "tls" | "http" | "ssh" | "silent" | "unknown";

/** All protocols, in the order they are documented. */
export const PROTOCOLS: readonly Protocol[] = ["tls", "http", "ssh", "silent", "unknown"];

/** A host name pattern: an exact name or `*.suffix` standing for exactly one extra label. */
export type HostPattern =
  | { kind: "exact"; name: string }
  | { kind: "wildcard"; suffix: string };

/** What a route matches. `null` fields match anything. */
export interface RouteMatch {
  /** The protocols this route accepts; `null` for any. */
  protocols: Protocol[] | null;
  /** TLS server names; `null` for any name, including none. */
  sni: HostPattern[] | null;
  /** ALPN protocols, of which the client must offer at least one; `null` for any. */
  alpn: string[] | null;
}

/** The `308` redirect of plain HTTP to https. */
export interface RedirectAction {
  kind: "redirect";
  status: 301 | 302 | 307 | 308;
  /** The https port written into `Location`; `null` with no listener leaves it out (443). */
  httpsPort: number | null;
  /** Take the https port from this listener's bound port (it may be port 0 in tests). */
  httpsListener: string | null;
  /** Requests under `/.well-known/acme-challenge/` go to this backend instead. */
  acmeBackend: string | null;
}

/** What a route does with a matching connection. */
export type RouteAction =
  | { kind: "passthrough"; backend: string }
  | { kind: "forward"; backend: string }
  | RedirectAction
  | { kind: "reject" };

/** One route of a listener. */
export interface RouteConfig {
  /** The route's name in logs: its `name` key, or `listener#index`. */
  name: string;
  match: RouteMatch;
  action: RouteAction;
  position: SourcePosition;
}
