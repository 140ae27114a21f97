/**
 * Connecting to a backend: pick a server, dial it under the backend's connect timeout, and on
 * failure move on to the next server until each has been tried once.
 *
 * @module
 */

import type { BackendConfig, ServerConfig } from "../config/types.ts";
import { closeQuietly, noDelay } from "./net.ts";

/** Why no server could be reached, as logged. */
export type ConnectFailure = "upstream-refused" | "upstream-timeout" | "upstream-unreachable";

/** The outcome of {@link connectUpstream}. */
export type ConnectResult =
  | { ok: true; conn: Deno.TcpConn; server: ServerConfig; attempts: number }
  | {
    ok: false;
    failure: ConnectFailure;
    server: ServerConfig | null;
    attempts: number;
    detail: string;
  };

/** Per-backend state that outlives one connection: where round robin stands. */
export class BackendState {
  #next = 0;

  constructor(readonly config: BackendConfig) {}

  /** The servers in the order this connection should try them. */
  order(): ServerConfig[] {
    const servers = this.config.servers;
    if (servers.length === 1) return servers;
    const start = this.#next;
    this.#next = (this.#next + 1) % servers.length;
    return [...servers.slice(start), ...servers.slice(0, start)];
  }
}

/**
 * Dials the backend's servers in turn until one accepts.
 *
 * @param signal Aborting it (graceful stop) abandons the attempt.
 */
export async function connectUpstream(
  backend: BackendState,
  signal?: AbortSignal,
): Promise<ConnectResult> {
  let attempts = 0;
  let last: { failure: ConnectFailure; server: ServerConfig; detail: string } | null = null;
  for (const server of backend.order()) {
    if (signal?.aborted) break;
    attempts++;
    const timeout = AbortSignal.timeout(backend.config.connectTimeout);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const conn = await Deno.connect({
        hostname: server.address.host,
        port: server.address.port,
        signal: combined,
      });
      if (combined.aborted) {
        closeQuietly(conn);
        throw timeout.reason;
      }
      noDelay(conn);
      return { ok: true, conn, server, attempts };
    } catch (e) {
      last = { server, ...describeConnectError(e, timeout.aborted) };
    }
  }
  return {
    ok: false,
    failure: last?.failure ?? "upstream-unreachable",
    server: last?.server ?? null,
    attempts,
    detail: last?.detail ?? "stopping",
  };
}

function describeConnectError(
  e: unknown,
  timedOut: boolean,
): { failure: ConnectFailure; detail: string } {
  if (timedOut) return { failure: "upstream-timeout", detail: "connect timed out" };
  if (e instanceof Deno.errors.ConnectionRefused) {
    return { failure: "upstream-refused", detail: "connection refused" };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { failure: "upstream-unreachable", detail: message };
}
