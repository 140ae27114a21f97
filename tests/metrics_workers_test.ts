/**
 * `/metrics` of `workers: 2`, read with Prometheus's own parser (`promtool check metrics`) and
 * with tests/_helpers/prometheus.ts: each metric combined across the workers as its meaning says
 * (counters and histograms add; build, start time and reloads are the supervisor's; server state
 * and certificate expiry are what every worker agrees on; `process_*` per process), and
 * `/status.json` telling the same reloads.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { startTcpBackend } from "./_helpers/backends.ts";
import { certPath, keyPath } from "./_helpers/certs.ts";
import { startDownloadBackend } from "./_helpers/download_backend.ts";
import { echoThrough } from "./_helpers/edgemux.ts";
import { documentedMetrics } from "./_helpers/metrics_docs.ts";
import { replaceFile, startEdgemuxCliOnFreePort } from "./_helpers/edgemux_cli.ts";
import { run } from "./_helpers/process.ts";
import {
  type Exposition,
  parsePrometheus,
  promtoolCheck,
  scrapeUntil,
} from "./_helpers/prometheus.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const NAME = "web.example.test";

interface Ports {
  echo: number;
  web: number;
  probe: number;
}

function workersConfig(port: number, p: Ports, workers = 2): string {
  return `version: 1
log: { level: info, format: text, access: false }
shutdown_timeout: 2s
workers: ${workers}
admin: { bind: "127.0.0.1:0" }
certificates:
  files: [{ cert: ${certPath("edge-wildcard")}, key: ${keyPath("edge-wildcard")} }]
  watch_interval: 0s
backends:
  echo: { servers: ["127.0.0.1:${p.echo}"], max_connections_per_client: none }
  web: { servers: ["127.0.0.1:${p.web}"], response_timeout: 90s }
  probe:
    servers: ["127.0.0.1:${p.probe}"]
    health_check: { type: tcp, interval: 200ms, timeout: 100ms, fall: 2, rise: 1 }
listeners:
  main:
    bind: "127.0.0.1:${port}"
    idle_timeout: 2h
    routes:
      - { name: web, sni: ${NAME}, edge: web }
      - { name: probe, sni: probe.example.test, forward: probe }
      - { name: echo, forward: echo }
`;
}

interface StatusJson {
  pid: number;
  startedAt: string;
  workers?: number[];
  reloads: {
    count: number;
    failures: number;
    lastOk: number | null;
    lastFailure: number | null;
    lastError: string | null;
  };
  backends: { name: string; servers: { up: boolean; reason: string | null }[] }[];
}

async function status(base: string): Promise<StatusJson> {
  const res = await fetch(`${base}/status.json`, { signal: AbortSignal.timeout(5000) });
  equal(res.status, 200);
  return await res.json() as StatusJson;
}

/** Scrapes once and checks the text with promtool as well. */
async function scrapeChecked(base: string): Promise<Exposition> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  equal(res.status, 200);
  await promtoolCheck(text);
  return parsePrometheus(text);
}

/** The certificate's notAfter in Unix seconds, as openssl reads it. */
async function notAfter(cert: string): Promise<number> {
  const openssl = requireTool("openssl", "openssl");
  const out = await run(openssl, ["x509", "-noout", "-enddate", "-in", cert]);
  equal(out.code, 0, out.stderr);
  return Date.parse(out.stdout.trim().replace(/^notAfter=/, "")) / 1000;
}

/** The largest finite bucket bound of a histogram family. */
function lastBound(m: Exposition, name: string): number {
  const [h] = m.histogram(name);
  ok(h, `no series of ${name}`);
  return Math.max(...h.buckets.map((b) => b.le).filter(Number.isFinite));
}

Deno.test("workers: 2 — /metrics combines each metric by its meaning, passes promtool, and agrees with /status.json", async (t) => {
  await using echo = await startTcpBackend("echo", "echo");
  await using web = startDownloadBackend();
  const probe = await startTcpBackend("probe", "echo");
  await using _probe = probe;
  await using dir = await makeTempDir("edgemux-metrics-workers-");
  const file = `${dir.path}/edgemux.yaml`;
  const ports = { echo: echo.port, web: web.port, probe: probe.port };
  const { cli: c, port } = await startEdgemuxCliOnFreePort(
    file,
    (p) => workersConfig(p, ports),
    { startTimeoutMs: 30_000 },
  );
  await using cli = c;
  const base = cli.adminUrl;

  await t.step(
    "promtool accepts the exposition, and the service's metrics are one value each",
    async () => {
      // Both workers must have answered: their process metrics are there.
      await scrapeUntil(
        `${base}/metrics`,
        (m) => m.samples("process_start_time_seconds").length === 3,
      );
      const m = await scrapeChecked(base);
      const s = await status(base);
      const build = m.samples("edgemux_build_info");
      equal(build.length, 1);
      equal(build[0].value, 1);
      equal(build[0].labels.version, denoJson.version);
      equal(build[0].labels.deno, Deno.version.deno);
      equal(m.value("edgemux_start_time_seconds", {}), Math.floor(Date.parse(s.startedAt) / 1000));
      ok(Math.abs(m.value("edgemux_start_time_seconds", {})! - Date.now() / 1000) < 120);
      equal(s.pid, cli.pid);
      // Reloads start at 0 for both results, so increase() sees the first one.
      equal(m.value("edgemux_reloads_total", { result: "success" }), 0);
      equal(m.value("edgemux_reloads_total", { result: "failure" }), 0);
      for (const cause of ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EADDRNOTAVAIL"]) {
        equal(m.value("edgemux_local_errors_total", { cause }), 0, cause);
      }
    },
  );

  await t.step("process_* metrics: one series per process, labelled by worker", async () => {
    const m = await scrapeChecked(base);
    const pids = [cli.pid, ...((await status(base)).workers ?? [])];
    equal(pids.length, 3);
    for (const name of ["process_start_time_seconds", "process_resident_memory_bytes"]) {
      deepEqual(m.samples(name).map((x) => x.labels.worker).sort(), ["0", "1", "supervisor"]);
    }
    for (const worker of ["supervisor", "0", "1"]) {
      const started = m.value("process_start_time_seconds", { worker })!;
      ok(Math.abs(started - Date.now() / 1000) < 300, `worker ${worker} started at ${started}`);
      ok(m.value("process_resident_memory_bytes", { worker })! > 10e6, worker);
      ok(m.value("process_cpu_seconds_total", { worker })! > 0, worker);
      ok(m.value("process_open_fds", { worker })! > 3, worker);
      ok(m.value("process_max_fds", { worker })! >= m.value("process_open_fds", { worker })!);
    }
  });

  await t.step("server state and certificate expiry are not added up", async () => {
    const up = { backend: "probe", server: `127.0.0.1:${probe.port}` };
    let m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_backend_server_up", up) === 1,
    );
    equal(
      m.value("edgemux_backend_server_up", { backend: "echo", server: `127.0.0.1:${echo.port}` }),
      1,
    );
    equal(m.value("edgemux_backend_server_up", up), 1);
    const expiry = m.samples("edgemux_certificate_not_after_timestamp_seconds");
    equal(expiry.length, 1);
    equal(expiry[0].value, await notAfter(certPath("edge-wildcard")));
    await probe.close();
    m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_backend_server_up", up) === 0,
      5000,
    );
    equal(m.value("edgemux_backend_server_up", up), 0);
    // Both workers check it; the status page says down once both do, with a reason.
    for (let i = 0; i < 50; i++) {
      const s = await status(base);
      const server = s.backends.find((b) => b.name === "probe")!.servers[0];
      if (!server.up && server.reason !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const server = (await status(base)).backends.find((b) => b.name === "probe")!.servers[0];
    equal(server.up, false);
    ok(server.reason, "no reason for the down server");
  });

  await t.step("counters and histograms add up over the workers; failures start at 0", async () => {
    let m = await scrapeChecked(base);
    // Series the config names exist before anything happened.
    equal(
      m.value("edgemux_connections_total", {
        listener: "main",
        protocol: "tls",
        route: "probe",
        end: "upstream-refused",
      }),
      0,
    );
    const codes = m.samples("edgemux_http_requests_total", { listener: "main", backend: "web" });
    deepEqual(codes.map((x) => x.labels.code).sort(), ["502", "503", "504"]);
    ok(codes.every((x) => x.value === 0));
    // Buckets reach the configured timeouts (idle 2h, response 90s).
    ok(lastBound(m, "edgemux_connection_duration_seconds") >= 7200);
    ok(lastBound(m, "edgemux_http_request_duration_seconds") >= 90);
    ok(lastBound(m, "edgemux_http_upstream_response_seconds") >= 90);

    const COUNT = 12;
    for (let i = 0; i < COUNT; i++) equal(await echoThrough(port, `hello ${i}\n`), `hello ${i}\n`);
    const curl = requireTool("curl", "curl");
    const result = await run(curl, [
      "-sS",
      "--resolve",
      `${NAME}:${port}:127.0.0.1`,
      "--cacert",
      certPath("ca"),
      "-w",
      "%{http_code}\n",
      ...[1, 2, 3, 4].flatMap((
        i,
      ) => ["-o", "/dev/null", "-H", "connection: close", `https://${NAME}:${port}/${i}`]),
    ]);
    equal(result.code, 0, result.stderr);
    equal(result.stdout, "200\n200\n200\n200\n");
    m = await scrapeUntil(
      `${base}/metrics`,
      (m) =>
        m.sum("edgemux_connections_total", { route: "echo" }) === COUNT &&
        m.sum("edgemux_http_requests_total", { code: "200" }) === 4,
    );
    await promtoolCheck(await (await fetch(`${base}/metrics`)).text());
    equal(m.sum("edgemux_connections_total", { route: "echo" }), COUNT);
    equal(m.sum("edgemux_http_requests_total", { code: "200" }), 4);
    equal(m.histogram("edgemux_http_request_duration_seconds").reduce((n, h) => n + h.count, 0), 4);
    equal(m.value("edgemux_connections_active", { listener: "main" }), 0);
  });

  await t.step(
    "docs/metrics.md lists every metric with its type and labels, and no other",
    async () => {
      const m = await scrapeChecked(base);
      const docs = await documentedMetrics();
      for (const [name, family] of m.families) {
        const row = docs.get(name);
        ok(row, `${name} is not in docs/metrics.md`);
        equal(row.type, family.type, name);
        const labels = new Set(family.samples.flatMap((x) => Object.keys(x.labels)));
        labels.delete("le");
        for (const label of labels) {
          ok(row.labels.includes(`\`${label}\``), `docs/metrics.md: ${name} lacks label ${label}`);
        }
        if (labels.has("worker")) equal(row.across, "per process", name);
      }
      const shown = new Set(m.families.keys());
      deepEqual([...docs.keys()].filter((n) => !shown.has(n)), [], "documented but not exported");
    },
  );

  await t.step("one SIGHUP counts one reload, in /metrics and /status.json alike", async () => {
    cli.signal("SIGHUP");
    let m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_reloads_total", { result: "success" }) !== 0,
      15_000,
    );
    equal(m.value("edgemux_reloads_total", { result: "success" }), 1);
    equal(m.value("edgemux_reloads_total", { result: "failure" }), 0);
    let s = await status(base);
    equal(s.reloads.count, 1);
    equal(s.reloads.failures, 0);
    ok(
      Math.abs(
        m.value("edgemux_last_reload_timestamp_seconds", { result: "success" })! -
          s.reloads.lastOk! / 1000,
      ) < 1,
    );

    // A config that does not load: one failure, counted by the supervisor.
    const good = await Deno.readTextFile(file);
    await replaceFile(file, "version: 1\nlisteners: {}\nbogus: true\n");
    cli.signal("SIGHUP");
    m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_reloads_total", { result: "failure" }) !== 0,
      15_000,
    );
    equal(m.value("edgemux_reloads_total", { result: "failure" }), 1);
    equal(m.value("edgemux_reloads_total", { result: "success" }), 1);
    s = await status(base);
    equal(s.reloads.failures, 1);
    equal(s.reloads.count, 1);
    ok(s.reloads.lastFailure! >= s.reloads.lastOk!);
    await replaceFile(file, good);
    await promtoolCheck(await (await fetch(`${base}/metrics`)).text());
  });
});
