/**
 * The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`, the status page
 * (`/`) and `/status.json`. It is off unless configured and binds loopback in the examples: it
 * describes the whole topology, so it is not for the public.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import {
  formatHostPort,
  type HostPort,
  isIPv4,
  isIPv6,
  isWildcardHost,
} from "../config/address.ts";
import type { AdminConfig } from "../config/types.ts";
import { type MetricsSnapshot, renderPrometheus } from "../proxy/observe/metrics.ts";
import { BindError } from "../proxy/bind.ts";
import { renderStatusPage, type StatusReport } from "../proxy/observe/status.ts";

/** Where the admin listener gets what it shows (one process, or the sum of workers). */
export interface AdminSource {
  metrics(): MetricsSnapshot | Promise<MetricsSnapshot>;
  status(): StatusReport | Promise<StatusReport>;
  /** True once every listener is bound, false again while stopping. */
  ready(): boolean;
}

/** Who may use the admin listener. */
export interface AdminAccess {
  /** Host names accepted besides IP literals of the bind address (lowercase, no port). */
  names: string[];
  /** The bind address; a wildcard accepts any IP literal as Host. */
  bindHost: string;
  /** The bearer token every request must carry; null for none. */
  token: string | null;
}

/** The access rules of `admin` with its token (read from `token_file` by prepare.ts). */
export function adminAccess(admin: AdminConfig, token: string | null): AdminAccess {
  const host = admin.bind.host;
  const loopback = host === "::1" || host.startsWith("127.") || isWildcardHost(host);
  return {
    names: [...(loopback ? ["localhost"] : []), ...admin.hosts],
    bindHost: host,
    token,
  };
}

/** A running admin listener. */
export interface AdminServer {
  readonly addr: Deno.NetAddr;
  /** Applies new access rules (a reload) without rebinding. */
  update(access: AdminAccess): void;
  close(): Promise<void>;
}

const SECURITY_HEADERS: [string, string][] = [
  ["cache-control", "no-store"],
  ["x-content-type-options", "nosniff"],
  // The page has inline styles only, and no script: nothing else may load.
  ["content-security-policy", "default-src 'none'; style-src 'unsafe-inline'"],
];

/**
 * Starts the admin listener.
 *
 * @throws {BindError} When the address cannot be bound.
 */
export function startAdmin(
  bind: HostPort,
  source: AdminSource,
  access: AdminAccess,
): AdminServer {
  let rules = access;
  const ac = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: bind.host,
      port: bind.port,
      signal: ac.signal,
      onListen: () => {},
      onError: () => new Response("Internal Server Error\n", { status: 500 }),
    }, (req) => refusal(req, rules) ?? handle(req, source));
  } catch (e) {
    const address = formatHostPort(bind);
    throw new BindError(
      "admin",
      address,
      `cannot bind ${address} for the admin listener: ${
        e instanceof Deno.errors.AddrInUse ? "the address is already in use" : String(e)
      }`,
      { cause: e },
    );
  }
  return {
    addr: server.addr,
    update(next) {
      rules = next;
    },
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

/**
 * The answer to a request that may not be served, or null. First the name: a browser tricked by
 * DNS rebinding sends the attacker's name as `Host`, so only names the listener is bound for
 * pass (the port is not compared: tunnels change it); 421 Misdirected Request (RFC 9110
 * §15.5.20) otherwise. Then the token (RFC 6750 §2.1), compared in constant time.
 */
function refusal(req: Request, access: AdminAccess): Response | null {
  const headers: [string, string][] = [
    ["content-type", "text/plain; charset=utf-8"],
    ...SECURITY_HEADERS,
  ];
  // Deno puts the Host header (or the absolute request target) into the URL; check both.
  const host = req.headers.get("host");
  if (
    !nameAllowed(new URL(req.url).hostname, access) ||
    (host !== null && !nameAllowed(hostName(host), access))
  ) {
    return new Response("Misdirected Request: this name is not served here\n", {
      status: 421,
      headers,
    });
  }
  if (access.token !== null && !bearerMatches(req.headers.get("authorization"), access.token)) {
    return new Response("Unauthorized\n", {
      status: 401,
      headers: [...headers, ["www-authenticate", 'Bearer realm="edgemux admin"']],
    });
  }
  return null;
}

/** The name part of a Host header value: no port, no brackets, lowercase, no final dot. */
function hostName(host: string): string {
  let name = host.trim();
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    name = end < 0 ? name : name.slice(0, end + 1);
  } else {
    const colon = name.lastIndexOf(":");
    if (colon >= 0) name = name.slice(0, colon);
  }
  return name;
}

function nameAllowed(hostname: string, access: AdminAccess): boolean {
  let name = hostname.toLowerCase();
  if (name.startsWith("[") && name.endsWith("]")) name = name.slice(1, -1);
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name === "") return false;
  // An address is no DNS name, so it cannot be rebound: the bind address itself, or any
  // address on a wildcard bind (the listener answers on all of them).
  if (isIPv4(name) || isIPv6(name)) {
    return isWildcardHost(access.bindHost) || sameAddress(name, access.bindHost) ||
      access.names.some((n) => sameAddress(name, n));
  }
  return access.names.includes(name);
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  if (!isIPv6(a) || !isIPv6(b)) return false;
  // Compare IPv6 in one spelling (URL normalises it).
  return new URL(`http://[${a}]/`).hostname === new URL(`http://[${b}]/`).hostname;
}

/** Whether `Authorization` carries the bearer token; the scheme is case-insensitive (RFC 9110 §11.1). */
function bearerMatches(header: string | null, token: string): boolean {
  if (header === null) return false;
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) return false;
  // Equal-length digests, so neither the length nor a common prefix shows in the timing.
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

async function handle(req: Request, source: AdminSource): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("Method Not Allowed\n", { status: 405, headers: [["allow", "GET, HEAD"]] });
  }
  const path = new URL(req.url).pathname;
  const text = (body: string, type: string, status = 200) =>
    new Response(req.method === "HEAD" ? null : body, {
      status,
      headers: [["content-type", type], ...SECURITY_HEADERS],
    });
  switch (path) {
    case "/metrics":
      return text(
        renderPrometheus(await source.metrics()),
        "text/plain; version=0.0.4; charset=utf-8",
      );
    case "/healthz":
      return text("ok\n", "text/plain; charset=utf-8");
    case "/readyz":
      return source.ready()
        ? text("ready\n", "text/plain; charset=utf-8")
        : text("not ready\n", "text/plain; charset=utf-8", 503);
    case "/status.json":
      return text(JSON.stringify(await source.status(), null, 2), "application/json");
    case "/":
      return text(renderStatusPage(await source.status()), "text/html; charset=utf-8");
    default:
      return text("Not Found\n", "text/plain; charset=utf-8", 404);
  }
}
