/**
 * The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`, the status page
 * (`/`) and `/status.json`. It is off unless configured and binds loopback in the examples: it
 * describes the whole topology, so it is not for the public.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../config/address.ts";
import { type MetricsSnapshot, renderPrometheus } from "./metrics.ts";
import { BindError } from "./runtime.ts";
import { renderStatusPage, type StatusReport } from "./status.ts";

/** Where the admin listener gets what it shows (one process, or the sum of workers). */
export interface AdminSource {
  metrics(): MetricsSnapshot | Promise<MetricsSnapshot>;
  status(): StatusReport | Promise<StatusReport>;
  /** True once every listener is bound, false again while stopping. */
  ready(): boolean;
}

/** A running admin listener. */
export interface AdminServer {
  readonly addr: Deno.NetAddr;
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
export function startAdmin(bind: HostPort, source: AdminSource): AdminServer {
  const ac = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: bind.host,
      port: bind.port,
      signal: ac.signal,
      onListen: () => {},
      onError: () => new Response("Internal Server Error\n", { status: 500 }),
    }, (req) => handle(req, source));
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
    async close() {
      ac.abort();
      await server.finished;
    },
  };
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
