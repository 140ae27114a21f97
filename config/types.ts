/**
 * The validated config: every default filled in, every reference checked, durations in
 * milliseconds and sizes in bytes. Nothing here is YAML any more; `parseConfig` builds it.
 *
 * @module
 */

import type { HostPort } from "./address.ts";
import type { SourcePosition } from "./errors.ts";
import type { PathNormalization } from "../routing/path.ts";

/** Log levels, from most to least verbose. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The whole config. */
export interface Config {
  /** The files it was read from, in merge order. */
  readonly files: readonly string[];
  /** Log level and format, and whether access lines are written. */
  readonly log: LogConfig;
  /** How long a graceful stop waits for open connections before closing them, in ms. */
  readonly shutdownTimeout: number;
  /** Limits and timeouts of the HTTP that edgemux parses on terminated routes. */
  readonly http: HttpConfig;
  /** Caps on open and new connections, overall and per client. */
  readonly limits: LimitsConfig;
  /** The admin listener (metrics, health, status page); null when off. */
  readonly admin: AdminConfig | null;
  /** Worker processes sharing the listeners (SO_REUSEPORT); 1 runs everything in one. */
  readonly workers: number;
  /** Reload when a config file changes (SIGHUP always reloads). */
  readonly watchConfig: boolean;
  /** null when no route terminates TLS and no certificates are configured. */
  readonly certificates: CertificatesConfig | null;
  /** Every backend, by its name in the config. */
  readonly backends: ReadonlyMap<string, BackendConfig>;
  /** Every listener, in config order. */
  readonly listeners: readonly ListenerConfig[];
}

/** Logging. */
export interface LogConfig {
  /** The least severe level written; lower ones are dropped. */
  readonly level: LogLevel;
  /** `text`: one human-readable line per record; `json`: one JSON object per line. */
  readonly format: "text" | "json";
  /** One access line per connection. */
  readonly access: boolean;
}

/** The admin listener. */
export interface AdminConfig {
  /** The address the admin listener binds. */
  readonly bind: HostPort;
  /**
   * Names accepted in the `Host` header besides the bind address (and `localhost` on a loopback
   * or wildcard bind), lowercase, without a trailing dot. Others get 421.
   */
  readonly hosts: readonly string[];
  /** The bearer token every request must carry; null for none (or when it is in `tokenFile`). */
  readonly token: string | null;
  /** A file holding the bearer token (read when the config is prepared); null for none. */
  readonly tokenFile: string | null;
  /** Where the `admin` block stands, for messages about it. */
  readonly position: SourcePosition;
}

/** Caps on connections, so that no client or flood can take everything. */
export interface LimitsConfig {
  /** Connections open at once, over all listeners. */
  readonly maxConnections: number;
  /** Connections open at once from one client address; null for no cap. */
  readonly perClientConnections: number | null;
  /** New connections per second from one client address (token bucket); null for no cap. */
  readonly perClientRate: number | null;
  /** How many new connections above the rate a client may open in a burst. */
  readonly perClientBurst: number;
}

/** Limits and timeouts for the HTTP that edgemux speaks itself. */
export interface HttpConfig {
  /** The most time from a request's first byte to the end of its head, in ms. */
  readonly requestHeadTimeout: number;
  /** How long an idle keep-alive connection waits for its next request, in ms. */
  readonly keepaliveTimeout: number;
  /** The largest request head accepted (request line plus headers), in bytes. */
  readonly maxHeadSize: number;
  /** The most header fields a request may carry. */
  readonly maxHeaders: number;
  /**
   * Client addresses (CIDRs) whose `X-Forwarded-For` and `Forwarded` fields are kept and
   * extended; everyone else's are replaced.
   */
  readonly trustedProxies: readonly string[];
  /**
   * How request paths are normalised before routing and forwarding (routing/path.ts): `strict`
   * merges slashes and refuses encoded separators; `pass` sends them through.
   */
  readonly pathNormalization: PathNormalization;
}

/** A named group of servers. */
export interface BackendConfig {
  /** The backend's name: its key under `backends`. */
  readonly name: string;
  /** The servers connections are balanced over, in config order. */
  readonly servers: readonly ServerConfig[];
  /** How long one TCP connect to a server may take, in ms. */
  readonly connectTimeout: number;
  /** A PROXY protocol header sent to each server before any client byte. */
  readonly proxyProtocol: "off" | "v1" | "v2";
  /** HTTP routes: how long to wait for the response head once the request is sent, in ms. */
  readonly responseTimeout: number;
  /** Speak TLS to the servers (reencrypt routes); null for plain TCP. */
  readonly tls: BackendTlsConfig | null;
  /** How a server is picked for each new connection or request. */
  readonly balance: BalanceAlgorithm;
  /** After a connect failure, how many other servers to try. */
  readonly retries: number;
  /**
   * Relayed connections (forward, passthrough, `tcp:` upstreams) one client may have open to
   * this backend at once; null for no cap. A client is an IPv4 address or an IPv6 /64.
   */
  readonly maxConnectionsPerClient: number | null;
  /** Active health checks; null when the servers are not probed. */
  readonly healthCheck: HealthCheckConfig | null;
  /** How failures seen in real traffic take servers down. */
  readonly passive: PassiveHealthConfig;
  /** Where the backend is defined, for messages about it. */
  readonly position: SourcePosition;
}

/** TLS towards a backend's servers. Paths are absolute. */
export interface BackendTlsConfig {
  /** PEM file of the CAs that may sign the servers' certificates; null for the system roots. */
  readonly caFile: string | null;
  /** The name sent as SNI and checked in the server's certificate; null for the server host. */
  readonly serverName: string | null;
  /** A client certificate (chain) and key for servers that ask for one. */
  readonly certFile: string | null;
  /** The private key of `certFile`; null exactly when `certFile` is. */
  readonly keyFile: string | null;
}

/** One server of a backend. */
export interface ServerConfig {
  /** Where the server listens. */
  readonly address: HostPort;
  /** `host:port`, as shown in logs. */
  readonly label: string;
  /** Share of new connections relative to the other servers (round_robin, least_conn, random). */
  readonly weight: number;
  /** Used only when every non-backup server is down. */
  readonly backup: boolean;
  /** The most connections (or in-flight HTTP requests) this server is sent at once. */
  readonly maxConnections: number | null;
}

/** How a backend picks a server. */
export type BalanceAlgorithm = "round_robin" | "least_conn" | "random" | "first";

/** Active health checks of a backend's servers. */
export interface HealthCheckConfig {
  /** `tcp`: connect; `tls`: connect and handshake; `http`: send a request, check the status. */
  readonly kind: "tcp" | "tls" | "http";
  /** Time between two checks of one server, in ms. */
  readonly interval: number;
  /** How long one check may take before it counts as failed, in ms. */
  readonly timeout: number;
  /** Consecutive successes that bring a down server back. */
  readonly rise: number;
  /** Consecutive failures that take an up server down. */
  readonly fall: number;
  /** For `http` checks. */
  readonly http:
    | { method: string; path: string; host: string | null; expect: [number, number] }
    | null;
  /** For `tls` checks (and `http` checks of a TLS backend without its own `tls` block). */
  readonly tls: { caFile: string | null; serverName: string | null } | null;
}

/** Passive health: what real traffic tells about a server. */
export interface PassiveHealthConfig {
  /** Consecutive connect failures (or 5xx responses) that take a server down; 0 turns it off. */
  readonly failures: number;
  /**
   * How long a server stays down before it is tried again, in ms (active checks may bring it
   * back sooner).
   */
  readonly backoff: number;
  /** Count 5xx responses from the server as failures. */
  readonly on5xx: boolean;
}

/** One listener: the addresses it binds and what it does with what arrives there. */
export interface ListenerConfig {
  /** The listener's name: its key under `listeners`, used in logs and metrics. */
  readonly name: string;
  /** The addresses this listener binds (port 0 picks a free port). */
  readonly binds: readonly HostPort[];
  /** Where each bind is written, for messages about it. */
  readonly bindPositions: readonly SourcePosition[];
  /** How long and how far a connection is read to tell its protocol. */
  readonly sniff: SniffConfig;
  /** A relayed connection with no bytes either way for this long (ms) is closed. */
  readonly idleTimeout: number;
  /** Connections open at once on this listener; null for only the global cap. */
  readonly maxConnections: number | null;
  /** Read a PROXY protocol header (v1 or v2) from every connection first; null when off. */
  readonly proxyProtocol: ProxyProtocolAccept | null;
  /** The routes, tried in order; the first that matches takes the connection. */
  readonly routes: readonly RouteConfig[];
  /** Where the listener is defined, for messages about it. */
  readonly position: SourcePosition;
}

/**
 * PROXY protocol headers accepted by a listener behind a load balancer or another proxy. The
 * address a header carries is then the client's everywhere: limits, logs, forwarding headers,
 * PROXY headers sent onwards.
 */
export interface ProxyProtocolAccept {
  /**
   * The networks (CIDRs) allowed to send headers: the load balancers. A connection from any
   * other address is refused; one from these without a valid header is refused too.
   */
  readonly acceptFrom: readonly string[];
  /** How long a connection may take to send its whole header, in ms. */
  readonly timeout: number;
}

/** How long and how much a listener reads to tell what a connection speaks. */
export interface SniffConfig {
  /** The most time the whole sniff may take, from accept to a decision, in ms. */
  readonly timeout: number;
  /**
   * After this long without a first byte, the client counts as `silent` (it waits for the
   * server to speak first, as SSH clients may); in ms. `null` when no route matches `silent`.
   */
  readonly silentAfter: number | null;
  /** The largest ClientHello accepted, in bytes. */
  readonly maxHelloSize: number;
}

/**
 * All protocols, in the order they are documented: what the probes of proxy/sniff/classify.ts
 * recognise, `silent` (the client sent nothing within `sniff.silent_after`) and `unknown` (no
 * probe matched). A new protocol is a name here and a probe there.
 */
export const PROTOCOLS = ["tls", "http", "ssh", "silent", "unknown"] as const;

/** What a connection was found to speak. */
export type Protocol = typeof PROTOCOLS[number];

/**
 * A host name pattern: an exact name, `*.suffix` standing for exactly one extra label, or
 * `**.suffix` standing for one or more extra labels (any depth, like nginx's `.suffix` without
 * the bare name, or HAProxy's `-m end` on a dot). Precedence (routing/route_table.ts): exact,
 * then `*.`, then `**.` with the longest suffix first.
 */
export type HostPattern =
  | { kind: "exact"; name: string }
  | { kind: "wildcard"; suffix: string }
  | { kind: "anyDepth"; suffix: string };

/** What a route matches. `null` fields match anything. */
export interface RouteMatch {
  /** The protocols this route accepts; `null` for any. */
  readonly protocols: readonly Protocol[] | null;
  /** TLS server names; `null` for any name, including none. */
  readonly sni: readonly HostPattern[] | null;
  /** ALPN protocols, of which the client must offer at least one; `null` for any. */
  readonly alpn: readonly string[] | null;
}

/** Where TLS certificates for terminated routes come from. Paths are absolute. */
export interface CertificatesConfig {
  /**
   * Directories scanned for certificates: `NAME.pem` holding a chain and its key, `NAME.crt`
   * with `NAME.key`, or a certbot-style `SUB/fullchain.pem` with `SUB/privkey.pem`.
   */
  readonly directories: readonly string[];
  /** Explicit certificate chain and key files. */
  readonly files: { cert: string; key: string }[];
  /**
   * A server name whose certificate answers clients that send no SNI or a name no
   * certificate covers; null to refuse them.
   */
  readonly defaultName: string | null;
  /** Self-signed certificates for names no real certificate covers; null when off. */
  readonly development: { directory: string } | null;
  /** How often certificate files are checked for changes, in ms; 0 turns watching off. */
  readonly watchInterval: number;
  /** Certificates ordered from an ACME CA (RFC 8555) for terminated names; null when off. */
  readonly acme: AcmeConfig | null;
}

/** An ACME challenge type edgemux can answer itself. */
export type AcmeChallengeType = "http-01" | "tls-alpn-01";

/** The key types edgemux can order certificates for. */
export type AcmeKeyType = "ec-p256" | "ec-p384" | "rsa-2048" | "rsa-4096";

/**
 * Certificates from an ACME CA for every exact name an `edge` or `reencrypt` route terminates
 * and no configured certificate covers. Paths are absolute.
 */
export interface AcmeConfig {
  /** The account's contact address (without `mailto:`). */
  readonly email: string;
  /** The CA's directory URL. */
  readonly directoryUrl: string;
  /** A PEM file of CAs to trust for the directory's HTTPS (a test CA); null for the system roots. */
  readonly caFile: string | null;
  /** The challenge types to use, most preferred first. */
  readonly challenges: readonly AcmeChallengeType[];
  /** The key type of the certificates ordered. */
  readonly keyType: AcmeKeyType;
  /** Where the account key, certificates, challenges and locks are kept. */
  readonly stateDirectory: string;
  /** The wait after a first failure, in ms; it doubles with every further failure, up to a day. */
  readonly retryInterval: number;
  /** Where the `acme` block stands, for messages about it. */
  readonly position: SourcePosition;
}

/** Header changes applied by an HTTP route, in the order remove, set, add. */
export interface HeaderOps {
  /** Field names (lowercase) to remove. */
  readonly remove: readonly string[];
  /** Fields to set, replacing any with the same name. */
  readonly set: [name: string, value: string][];
  /** Fields to append. */
  readonly add: [name: string, value: string][];
}

/** How an HTTP route matches a request path. */
export type PathMatch =
  /** The path equals `value` (the query is not part of the match). */
  | { kind: "exact"; value: string }
  /**
   * The path starts with `value` at a segment boundary: `/api` matches `/api`, `/api/` and
   * `/api/x` but not `/apix`; a value ending in `/` matches anything below it.
   */
  | { kind: "prefix"; value: string };

/** One HTTP route inside an `edge` or `reencrypt` route. */
export interface HttpRouteConfig {
  /** For logs: the `name` key, or `<tls route>/http#<index>`. */
  readonly name: string;
  /** Host patterns; null matches any host. */
  readonly hosts: readonly HostPattern[] | null;
  /** null matches any path. */
  readonly path: PathMatch | null;
  /** Forward matching requests to a backend, or answer them with a redirect to `location`. */
  action:
    | { kind: "backend"; backend: string }
    | { kind: "redirect"; location: string; status: 301 | 302 | 303 | 307 | 308 };
  /** Remove the matched path prefix before forwarding (prefix routes only). */
  readonly stripPrefix: boolean;
  /** Replace the matched path prefix with this before forwarding (prefix routes only). */
  readonly rewritePrefix: string | null;
  /** Changes to the request's header fields before it is forwarded. */
  readonly requestHeaders: HeaderOps;
  /** Changes to the response's header fields before it is sent to the client. */
  readonly responseHeaders: HeaderOps;
  /** Where the HTTP route is defined, for messages about it. */
  readonly position: SourcePosition;
}

/** The `308` redirect of plain HTTP to https. */
export interface RedirectAction {
  /** Marks a plain-HTTP redirect route. */
  readonly kind: "redirect";
  /** The status code of the redirect response. */
  readonly status: 301 | 302 | 307 | 308;
  /** The https port written into `Location`; `null` with no listener leaves it out (443). */
  readonly httpsPort: number | null;
  /** Take the https port from this listener's bound port (it may be port 0 in tests). */
  readonly httpsListener: string | null;
  /** Requests under `/.well-known/acme-challenge/` go to this backend instead. */
  readonly acmeBackend: string | null;
}

/** What a route does with a matching connection. */
export type RouteAction =
  | { kind: "passthrough"; backend: string }
  | { kind: "forward"; backend: string }
  | TerminateAction
  | RedirectAction
  | { kind: "reject" };

/**
 * TLS ends at edgemux. `edge` sends plain HTTP (or TCP) to its backends; `reencrypt` speaks TLS
 * to them again, with each backend's own CA and name.
 */
export interface TerminateAction {
  /** `edge`: plain connections to the backends; `reencrypt`: TLS to them again. */
  readonly kind: "edge" | "reencrypt";
  /** HTTP routing by host and path, or one backend that gets the decrypted byte stream. */
  upstream:
    | { kind: "http"; routes: HttpRouteConfig[] }
    | { kind: "tcp"; backend: string };
}

/**
 * Whether a route action ends TLS at edgemux (`edge`, `reencrypt`) rather than relaying the
 * client's bytes or answering them itself. The one place this rule is written.
 */
export function isTerminating(action: RouteAction): action is TerminateAction {
  return action.kind === "edge" || action.kind === "reencrypt";
}

/**
 * Ends an exhaustive `switch` over a union: once every member has its case, `x` is `never`, so a
 * new member (a route action, a protocol, a sniff verdict) is a compile error at every such switch
 * until it is handled there. Throws if a value the types rule out arrives anyway.
 */
export function assertNever(x: never, what: string): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(x)}`);
}

/** One route of a listener. */
export interface RouteConfig {
  /** The route's name in logs: its `name` key, or `listener#index`. */
  readonly name: string;
  /** What a connection must show for this route to take it. */
  readonly match: RouteMatch;
  /** What happens to a connection this route takes. */
  readonly action: RouteAction;
  /** Where the route is defined, for messages about it. */
  readonly position: SourcePosition;
}
