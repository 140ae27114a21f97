/**
 * edgemux's own metrics: what the access records say (connections, bytes, requests, statuses,
 * durations), what the backends say (server health and load), reloads and certificates.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import type { AccessRecord } from "./context.ts";
import type { RequestRecord } from "./http/session.ts";
import { localErrorCounts } from "./local_errors.ts";
import { type Histogram, Registry, type Series } from "./metrics.ts";

/** The metrics of one edgemux process. */
export class ProxyMetrics {
  readonly registry: Registry = new Registry();
  readonly #connections: Series;
  readonly #bytes: Series;
  readonly #connectionSeconds: Histogram;
  readonly #requests: Series;
  readonly #requestSeconds: Histogram;
  readonly #upstreamSeconds: Histogram;
  readonly #reloads: Series;
  readonly #lastReload: Series;
  readonly #reloadSeconds: Series;

  constructor() {
    const r = this.registry;
    r.gauge("edgemux_build_info", "Version of edgemux and of the Deno runtime it runs on.", [
      "version",
      "deno",
    ]).set([denoJson.version, Deno.version.deno], 1);
    r.gauge("edgemux_start_time_seconds", "When the process started, in Unix seconds.", [])
      .set([], Math.floor(Date.now() / 1000));
    this.#connections = r.counter(
      "edgemux_connections_total",
      "Connections that ended, by listener, detected protocol, route and how they ended.",
      ["listener", "protocol", "route", "end"],
    );
    this.#bytes = r.counter(
      "edgemux_connection_bytes_total",
      "Bytes relayed, by listener and direction (up: from clients, down: to clients).",
      ["listener", "direction"],
    );
    this.#connectionSeconds = r.histogram(
      "edgemux_connection_duration_seconds",
      "How long connections lasted, by listener.",
      ["listener"],
    );
    this.#requests = r.counter(
      "edgemux_http_requests_total",
      "HTTP requests on terminated connections, by listener, route, backend and status.",
      ["listener", "route", "backend", "status"],
    );
    this.#requestSeconds = r.histogram(
      "edgemux_http_request_duration_seconds",
      "From a request's head to the end of its response, by listener and route.",
      ["listener", "route"],
    );
    this.#upstreamSeconds = r.histogram(
      "edgemux_http_upstream_response_seconds",
      "From sending a request to a backend to its response head, by backend.",
      ["backend"],
    );
    this.#reloads = r.counter(
      "edgemux_reloads_total",
      "Config reloads, by result (success or failure).",
      ["result"],
    );
    this.#lastReload = r.gauge(
      "edgemux_last_reload_timestamp_seconds",
      "When the last reload with each result happened, in Unix seconds.",
      ["result"],
    );
    this.#reloadSeconds = r.gauge(
      "edgemux_last_reload_duration_seconds",
      "How long the last reload took.",
      [],
    );
    // Counted process-wide where the dial or accept failed (local_errors.ts); copied in here.
    const local = r.counter(
      "edgemux_local_errors_total",
      "Connects and accepts that failed for lack of a local resource (cause: EMFILE, ENFILE, " +
        "ENOBUFS, ENOMEM, EADDRNOTAVAIL); never counted against a backend.",
      ["cause"],
    );
    r.collect(() => {
      for (const [cause, n] of localErrorCounts()) local.set([cause], n);
    });
  }

  connection(record: AccessRecord): void {
    const protocol = record.protocol ?? "none";
    this.#connections.inc([record.listener, protocol, record.route ?? "", record.end]);
    if (record.up > 0) this.#bytes.inc([record.listener, "up"], record.up);
    if (record.down > 0) this.#bytes.inc([record.listener, "down"], record.down);
    this.#connectionSeconds.observe([record.listener], record.ms / 1000);
  }

  request(record: RequestRecord): void {
    this.#requests.inc([
      record.listener,
      record.route ?? "",
      record.backend ?? "",
      String(record.status),
    ]);
    this.#requestSeconds.observe([record.listener, record.route ?? ""], record.ms / 1000);
    if (record.upstream_ms !== null && record.backend !== null) {
      this.#upstreamSeconds.observe([record.backend], record.upstream_ms / 1000);
    }
  }

  reload(ok: boolean, ms: number): void {
    const result = ok ? "success" : "failure";
    this.#reloads.inc([result]);
    this.#lastReload.set([result], Math.floor(Date.now() / 1000));
    this.#reloadSeconds.set([], ms / 1000);
  }
}
