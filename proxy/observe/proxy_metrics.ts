/**
 * edgemux's own metrics: what the access records say (connections, bytes, requests, statuses,
 * durations), what the backends say (server health and load), reloads and certificates.
 * docs/metrics.md lists every metric with its type, labels and how workers combine it.
 *
 * @module
 */

import type { Config } from "../../config/types.ts";
import { isTerminating, PROTOCOLS } from "../../config/types.ts";
import type { AccessRecord, EndReason, RequestRecord } from "./records.ts";
import { type LocalCause, localErrorCounts } from "../backends/local_errors.ts";
import { durationBuckets, type Histogram, Registry, type Series } from "./metrics.ts";
import { ServiceMetrics } from "./service_metrics.ts";

/** Every cause `edgemux_local_errors_total` counts. */
const LOCAL_CAUSES: readonly LocalCause[] = [
  "EMFILE",
  "ENFILE",
  "ENOBUFS",
  "ENOMEM",
  "EADDRNOTAVAIL",
];

/**
 * The ends of a relayed connection that series start at 0 for, per route and protocol: the
 * normal one and every way the connect to a backend can fail, so an `increase()` over them
 * sees the first failure. Other ends appear when they first happen. The `end` label's values are
 * exactly the {@link EndReason}s (records.ts).
 */
const RELAY_ENDS: readonly EndReason[] = [
  "client-closed",
  "upstream-refused",
  "upstream-timeout",
  "upstream-unreachable",
  "upstream-tls",
  "local-resource",
  "no-server-up",
  "server-full",
];

/** The statuses edgemux answers itself when a backend fails (RFC 9110 §15.6). */
const UPSTREAM_FAILURE_CODES: readonly string[] = ["502", "503", "504"];

/** The histograms, created by the first config (their buckets reach its timeouts). */
interface Histograms {
  connectionSeconds: Histogram;
  requestSeconds: Histogram;
  upstreamSeconds: Histogram;
}

/** The metrics of one edgemux process. */
export class ProxyMetrics {
  readonly registry: Registry = new Registry();
  /** Build, start time, reloads and process metrics (shared with the status page). */
  readonly service: ServiceMetrics;
  readonly #connections: Series;
  readonly #bytes: Series;
  readonly #requests: Series;
  #histograms: Histograms | null = null;

  constructor() {
    const r = this.registry;
    this.service = new ServiceMetrics(r);
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
    this.#requests = r.counter(
      "edgemux_http_requests_total",
      "HTTP requests on terminated connections, by listener, route, backend and status code.",
      ["listener", "route", "backend", "code"],
    );
    // Counted process-wide where the dial or accept failed (local_errors.ts); copied in here.
    const local = r.counter(
      "edgemux_local_errors_total",
      "Connects and accepts that failed for lack of a local resource (cause: EMFILE, ENFILE, " +
        "ENOBUFS, ENOMEM, EADDRNOTAVAIL); never counted against a backend.",
      ["cause"],
    );
    for (const cause of LOCAL_CAUSES) local.init([cause]);
    r.collect(() => {
      for (const [cause, n] of localErrorCounts()) local.set([cause], n);
    });
  }

  /**
   * Takes a config in use (at start and after each reload): creates the histograms on the first
   * call, with buckets that reach its timeouts, and starts at 0 every series whose labels the
   * config names, so the first event of each is an increase a scraper sees.
   */
  configure(config: Config): void {
    const h = this.#histograms ??= this.#createHistograms(config);
    for (const l of config.listeners) {
      this.#bytes.init([l.name, "up"]);
      this.#bytes.init([l.name, "down"]);
      h.connectionSeconds.init([l.name]);
      for (const route of l.routes) {
        const a = route.action;
        const relays = a.kind === "passthrough" || a.kind === "forward" ||
          (isTerminating(a) && a.upstream.kind === "tcp");
        if (relays) {
          for (const protocol of route.match.protocols ?? PROTOCOLS) {
            for (const end of RELAY_ENDS) {
              this.#connections.init([l.name, protocol, route.name, end]);
            }
          }
        }
        if (isTerminating(a) && a.upstream.kind === "http") {
          for (const hr of a.upstream.routes) {
            h.requestSeconds.init([l.name, hr.name]);
            if (hr.action.kind !== "backend") continue;
            for (const code of UPSTREAM_FAILURE_CODES) {
              this.#requests.init([l.name, hr.name, hr.action.backend, code]);
            }
            h.upstreamSeconds.init([hr.action.backend]);
          }
        }
      }
    }
  }

  #createHistograms(config: Config): Histograms {
    const r = this.registry;
    const seconds = (ms: number[]) => Math.max(0, ...ms) / 1000;
    const backends = [...config.backends.values()];
    return {
      connectionSeconds: r.histogram(
        "edgemux_connection_duration_seconds",
        "How long connections lasted, by listener.",
        ["listener"],
        durationBuckets(seconds(config.listeners.map((l) => l.idleTimeout))),
      ),
      requestSeconds: r.histogram(
        "edgemux_http_request_duration_seconds",
        "From a request's head to the end of its response, by listener and route.",
        ["listener", "route"],
        durationBuckets(seconds([
          config.http.requestHeadTimeout,
          ...backends.map((b) => b.responseTimeout),
        ])),
      ),
      upstreamSeconds: r.histogram(
        "edgemux_http_upstream_response_seconds",
        "From sending a request to a backend to its response head, by backend.",
        ["backend"],
        durationBuckets(seconds(backends.map((b) => b.responseTimeout))),
      ),
    };
  }

  connection(record: AccessRecord): void {
    const protocol = record.protocol ?? "none";
    this.#connections.inc([record.listener, protocol, record.route ?? "", record.end]);
    if (record.up > 0) this.#bytes.inc([record.listener, "up"], record.up);
    if (record.down > 0) this.#bytes.inc([record.listener, "down"], record.down);
    this.#histograms?.connectionSeconds.observe([record.listener], record.ms / 1000);
  }

  request(record: RequestRecord): void {
    this.#requests.inc([
      record.listener,
      record.route ?? "",
      record.backend ?? "",
      String(record.status),
    ]);
    this.#histograms?.requestSeconds.observe(
      [record.listener, record.route ?? ""],
      record.ms / 1000,
    );
    if (record.upstream_ms !== null && record.backend !== null) {
      this.#histograms?.upstreamSeconds.observe([record.backend], record.upstream_ms / 1000);
    }
  }

  /** Records a reload: `error` is null when it succeeded. */
  reload(error: string | null, ms: number): void {
    this.service.reload(error, ms);
  }
}
