/**
 * Running out of file descriptors is edgemux's own problem, never a backend's: `edgemux run`
 * under `prlimit --nofile=N`, with two real backends per route, is flooded until connects and
 * accepts fail with EMFILE. The backends must stay up (passive health is set to take a server
 * down after one failure, for a minute), the log must name the local cause, the metric must count
 * it, and once the clients leave a fresh request must be served at once. Also: a second stop
 * signal ends the process at once even after the exhaustion.
 */

import { equal, match, ok } from "node:assert/strict";
import { serveHttp, startTcpBackend } from "./_helpers/backends.ts";
import { certPath, keyPath } from "./_helpers/certs.ts";
import { curlHttps } from "./_helpers/curl.ts";
import { logLines, startEdgemuxCli } from "./_helpers/edgemux_cli.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { buildClientHello } from "../proxy/_testing/hello_builder.ts";
import { scrapeMetrics } from "./_helpers/prometheus.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const NAME = "web.example.test";
/** Low enough that a few hundred streams or connections run out, high enough to start. */
const NOFILE = 120;

function config(web: number[], echo: number[], checked: number[]): string {
  const list = (ports: number[]) => `[${ports.map((p) => `"127.0.0.1:${p}"`).join(", ")}]`;
  // One failure takes a server down for a minute: any EMFILE counted against a server would
  // show as a 503 or a down server long after the flood.
  const passive = "passive_health: { failures: 1, backoff: 60s }";
  return `version: 1
log: { level: info, format: text, access: false }
shutdown_timeout: 60s
admin: { bind: "127.0.0.1:0" }
certificates:
  files: [{ cert: ${certPath("edge-wildcard")}, key: ${keyPath("edge-wildcard")} }]
  watch_interval: 0s
backends:
  web: { servers: ${list(web)}, ${passive} }
  echo: { servers: ${list(echo)}, ${passive} }
  checked:
    servers: ${list(checked)}
    health_check: { type: tcp, interval: 250ms, timeout: 200ms, fall: 1, rise: 1 }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: ${NAME}, edge: web }
      - { sni: checked.example.test, passthrough: checked }
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: echo
`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("out of file descriptors: backends stay up, the log names EMFILE, service resumes at once, a second SIGTERM ends it", async () => {
  const h2load = requireTool("h2load", "nghttp2-client");
  // Slow answers keep every stream's upstream connection open at the same time.
  const slow = (name: string) =>
    serveHttp(async (req) => {
      if (new URL(req.url).pathname === "/slow") await sleep(1500);
      return new Response(`${name}\n`);
    });
  await using webA = slow("a");
  await using webB = slow("b");
  await using echoA = await startTcpBackend("echo-a", "echo");
  await using echoB = await startTcpBackend("echo-b", "echo");
  await using checkedA = await startTcpBackend("checked-a", "echo");
  await using checkedB = await startTcpBackend("checked-b", "echo");
  await using dir = await makeTempDir("edgemux-nofile-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    config([webA.port, webB.port], [echoA.port, echoB.port], [checkedA.port, checkedB.port]),
  );
  await using cli = await startEdgemuxCli(file, { nofile: NOFILE });
  const https = cli.port("https");
  const tcp = cli.port("tcp");
  const admin = cli.adminUrl;

  // Before: every server is up and the route works.
  equal((await curlHttps(https, NAME, "/")).status, 200);

  // 1. HTTP/2 streams, each on an upstream connection of its own: the pool's dials run out.
  const flood = await run(h2load, [
    "-t1",
    "-c4",
    "-m100",
    "-n400",
    `--connect-to=127.0.0.1:${https}`,
    `https://${NAME}:${https}/slow`,
  ], { timeoutMs: 60_000 });
  ok(flood.code === 0 || flood.stdout.includes("requests:"), flood.stderr);

  // 2. Raw connections to the forward route, held open: accepts and dials run out.
  const held: Deno.Conn[] = [];
  for (let i = 0; i < 300; i++) {
    try {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: tcp }));
    } catch {
      break;
    }
  }
  // Give the accept loop time to take what it can and to fail on the rest.
  await sleep(1500);
  for (const c of held) c.close();

  // After: nothing was held against a backend.
  const fresh = await curlHttps(https, NAME, "/", "2", [], { timeoutMs: 10_000 });
  equal(fresh.status, 200, `a fresh request after the flood: ${fresh.status} ${fresh.body}`);
  const echoed = await echoOnce(tcp);
  equal(echoed, "ping", "a fresh TCP connection after the flood is relayed");

  const status = await (await fetch(`${admin}/status.json`)).json() as {
    backends: { name: string; servers: { label: string; up: boolean; reason: string | null }[] }[];
  };
  for (const b of status.backends) {
    for (const s of b.servers) {
      ok(s.up, `${b.name} ${s.label} is down after the flood: ${s.reason}`);
    }
  }
  const metrics = await scrapeMetrics(`${admin}/metrics`);
  const emfile = metrics.sum("edgemux_local_errors_total", { cause: "EMFILE" });
  ok(emfile > 0, `edgemux_local_errors_total{cause="EMFILE"} is ${emfile}`);
  for (const b of ["web", "echo", "checked"]) {
    for (const s of metrics.family("edgemux_backend_server_up").samples) {
      if (s.labels.backend === b) equal(s.value, 1, `${b} ${s.labels.server} up`);
    }
  }

  const output = cli.output();
  const local = logLines(output, "local resource error (not the peer's fault)");
  ok(local.length > 0, `no local resource error line:\n${output.slice(-4000)}`);
  ok(local.every((f) => f.cause === "EMFILE"), JSON.stringify(local));
  ok(
    local.some((f) => f.where === "connect"),
    `no dial failed on EMFILE: ${JSON.stringify(local)}`,
  );
  // A check that timed out is a real verdict (on a machine this busy, a 200 ms check can time
  // out); what must never happen is a server taken down by edgemux's own missing descriptors.
  const downs = logLines(output, "server down").filter((f) => !/timed out/.test(f.reason ?? ""));
  equal(downs.length, 0, output.slice(-4000));
  // Logged once per interval per cause and place, not once per failure.
  ok(local.length <= 20, `${local.length} local error lines for ${emfile} errors`);

  // 3. Exhausted again, and stopped while exhausted: a second stop signal ends the process at
  // once, however long the drain would be (shutdown_timeout is a minute).
  const again: Deno.Conn[] = [];
  const hello = buildClientHello({ sni: NAME, alpn: ["h2", "http/1.1"] });
  const background = startProcess(h2load, [
    "-t1",
    "-c4",
    "-m100",
    "-n100000",
    "-D",
    "20",
    `--connect-to=127.0.0.1:${https}`,
    `https://${NAME}:${https}/slow`,
  ]);
  try {
    for (let i = 0; i < 300; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: i % 2 ? tcp : https });
        again.push(conn);
        // A ClientHello and then nothing: the TLS handshake stalls on the edge route.
        if (i % 2 === 0) await conn.write(hello);
      } catch {
        break;
      }
    }
    await sleep(1000);
    cli.signal("SIGTERM");
    await cli.waitForOutput("stopping", 5000);
    await sleep(500);
    const second = performance.now();
    cli.signal("SIGTERM");
    const exited = await Promise.race([cli.exited, sleep(5000).then(() => null)]);
    const ms = Math.round(performance.now() - second);
    ok(
      exited !== null,
      `still running 5 s after the second SIGTERM:\n${cli.output().slice(-3000)}`,
    );
    match(cli.output(), /second stop signal/);
    console.log(`exited ${ms} ms after the second SIGTERM, code ${exited.code}`);
  } finally {
    for (const c of again) c.close();
    await background.stop("SIGKILL");
  }
});

async function echoOnce(port: number): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode("ping"));
  const buf = new Uint8Array(16);
  const n = await Promise.race([conn.read(buf), sleep(5000).then(() => null)]);
  return n === null ? "(nothing within 5 s)" : new TextDecoder().decode(buf.subarray(0, n));
}
