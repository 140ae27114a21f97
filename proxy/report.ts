/**
 * What the running proxy says about itself: the gauges refreshed at each scrape of the metrics
 * (connections, servers in rotation, certificate expiry, ACME), and the status report behind the
 * status page. Both read the current generation through a {@link RuntimeView}.
 *
 * @module
 */

import { formatHostPort } from "../config/address.ts";
import denoJson from "../deno.json" with { type: "json" };
import type { InspectedCert } from "./tls/certs/certificate.ts";
import type { AcmeManager } from "./tls/certs/acme.ts";
import { recentProblems } from "./observe/log.ts";
import type { ProxyMetrics } from "./observe/proxy_metrics.ts";
import { describeAction, describeMatch, type StatusReport } from "./observe/status.ts";
import type { Generation } from "./generation.ts";
import type { PreparedConfig } from "./prepare.ts";

/** The running proxy as the report reads it, each value as it is at the time of asking. */
export interface RuntimeView {
  /** The process's metrics. */
  readonly metrics: ProxyMetrics;
  /** The current generation; null before the first one is installed. */
  generation(): Generation | null;
  /** The ACME schedule, when `certificates.acme` is configured. */
  acme(): AcmeManager | null;
  /** Connections open now on a listener. */
  inListener(listener: string): number;
  /** The bound addresses of each listener. */
  addrs(): Map<string, Deno.NetAddr[]>;
  /** Connections being handled now. */
  activeConnections(): number;
}

const VERSION: string = denoJson.version;

/** Registers the gauges that describe the present, refreshed at each scrape. */
export function collectGauges(view: RuntimeView): void {
  const r = view.metrics.registry;
  const active = r.gauge(
    "edgemux_connections_active",
    "Connections open now, by listener.",
    ["listener"],
    { across: "sum" },
  );
  const up = r.gauge(
    "edgemux_backend_server_up",
    "1 when a backend server is in rotation (healthy), 0 when it is down; with workers, 1 " +
      "only when every worker has it in rotation.",
    ["backend", "server"],
    { across: "min" },
  );
  const busy = r.gauge(
    "edgemux_backend_server_active",
    "Connections or in-flight requests on each backend server.",
    ["backend", "server"],
    { across: "sum" },
  );
  const expiry = r.gauge(
    "edgemux_certificate_not_after_timestamp_seconds",
    "When each loaded certificate expires, in Unix seconds; with workers, the earliest any " +
      "worker serves.",
    ["file", "name"],
    { across: "min" },
  );
  const source = r.gauge(
    "edgemux_certificate_source",
    "1 for each name a served certificate covers, labelled with where it came from: " +
      "file, acme or development.",
    ["name", "source"],
    { across: "max" },
  );
  const acmeExpiry = r.gauge(
    "edgemux_acme_not_after_timestamp_seconds",
    "When the ACME certificate of each name expires, in Unix seconds (absent before the first).",
    ["name"],
    { across: "min" },
  );
  const acmeNext = r.gauge(
    "edgemux_acme_next_attempt_timestamp_seconds",
    "When each ACME name is next renewed or retried, in Unix seconds.",
    ["name"],
    { across: "max" },
  );
  const acmeFailures = r.gauge(
    "edgemux_acme_failures",
    "Consecutive failed attempts to get each ACME name's certificate; 0 after a success.",
    ["name"],
    { across: "max" },
  );
  r.collect(() => {
    active.clear();
    up.clear();
    busy.clear();
    expiry.clear();
    source.clear();
    acmeExpiry.clear();
    acmeNext.clear();
    acmeFailures.clear();
    for (const a of view.acme()?.status() ?? []) {
      if (a.notAfter !== null) {
        acmeExpiry.set([a.name], Math.floor(Date.parse(a.notAfter) / 1000));
      }
      if (a.nextAttempt !== null) {
        acmeNext.set([a.name], Math.floor(Date.parse(a.nextAttempt) / 1000));
      }
      acmeFailures.set([a.name], a.failures);
    }
    const gen = view.generation();
    if (gen === null) return;
    for (const l of gen.prepared.config.listeners) {
      active.set([l.name], view.inListener(l.name));
    }
    const now = Date.now();
    for (const b of gen.backends.values()) {
      for (const s of b.servers) {
        up.set([b.name, s.config.label], s.up(now) ? 1 : 0);
        busy.set([b.name, s.config.label], s.active);
      }
    }
    for (const c of loadedCertificates(gen.prepared)) {
      expiry.set([c.origin.cert, c.names[0] ?? ""], Math.floor(c.notAfter.getTime() / 1000));
      const from = certificateSource(gen.prepared, c);
      const names = c === gen.prepared.devCert ? gen.prepared.devNames : c.names;
      for (const name of names) source.set([name, from], 1);
    }
  });
}

/** What the status page shows, from the current generation. */
export function statusReport(view: RuntimeView): StatusReport {
  const gen = view.generation()!;
  const acme = view.acme();
  const config = gen.prepared.config;
  const now = Date.now();
  return {
    version: VERSION,
    pid: Deno.pid,
    startedAt: new Date(view.metrics.service.started).toISOString(),
    uptimeSeconds: Math.floor((now - view.metrics.service.started) / 1000),
    configFiles: config.files,
    reloads: view.metrics.service.reloads,
    activeConnections: view.activeConnections(),
    listeners: config.listeners.map((l) => ({
      name: l.name,
      addresses: (view.addrs().get(l.name) ?? []).map((a) =>
        formatHostPort({ host: a.hostname, port: a.port })
      ),
      active: view.inListener(l.name),
      routes: l.routes.map((r) => ({
        name: r.name,
        match: describeMatch(r),
        action: describeAction(r),
      })),
    })),
    backends: [...gen.backends.values()].map((b) => ({
      name: b.name,
      balance: b.config.balance,
      healthCheck: b.config.healthCheck?.kind ?? null,
      servers: b.servers.map((s) => ({
        address: s.config.label,
        up: s.up(now),
        active: s.active,
        weight: s.config.weight,
        backup: s.config.backup,
        reason: s.up(now) ? null : s.reason,
      })),
    })),
    certificates: loadedCertificates(gen.prepared).map((c) => ({
      names: c.names,
      notAfter: c.notAfter.toISOString(),
      file: c.origin.cert,
      development: c === gen.prepared.devCert,
      source: certificateSource(gen.prepared, c),
    })),
    ...(acme !== null ? { acme: acme.status() } : {}),
    recentProblems: recentProblems(),
  };
}

/** The certificates a generation serves: the loaded ones, then the development one. */
function loadedCertificates(prepared: PreparedConfig): readonly InspectedCert[] {
  const loaded = prepared.certs?.certs ?? [];
  return prepared.devCert ? [...loaded, prepared.devCert] : loaded;
}

/** Where a served certificate came from, for the status page and metrics. */
function certificateSource(
  prepared: PreparedConfig,
  cert: InspectedCert,
): "file" | "acme" | "development" {
  if (cert === prepared.devCert) return "development";
  const acme = prepared.config.certificates?.acme ?? null;
  if (acme !== null && cert.origin.cert.startsWith(`${acme.stateDirectory}/certs/`)) return "acme";
  return "file";
}
