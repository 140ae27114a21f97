/**
 * The admin listener of `edgemux run`: `/metrics` read with a real exposition-format parser
 * (tests/_helpers/prometheus.ts) and compared with the traffic the test sent, `/healthz`,
 * `/readyz`, `/status.json`, the answers to other paths and methods, and the status page as
 * headless Chromium renders it, kept as a screenshot in tests/artifacts/. The parser itself is
 * tested in tests/prometheus_parser_test.ts.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { serveHttp, startTcpBackend } from "./_helpers/backends.ts";
import { certPath, keyPath } from "./_helpers/certs.ts";
import { HEADLESS_CHROMIUM_FLAGS } from "./_helpers/chromium.ts";
import { startDownloadBackend } from "./_helpers/download_backend.ts";
import { readAll, writeAll } from "./_helpers/edgemux.ts";
import { logLines, replaceFile, startEdgemuxCli } from "./_helpers/edgemux_cli.ts";
import { run } from "./_helpers/process.ts";
import {
  type Exposition,
  parsePrometheus,
  promtoolCheck,
  scrapeUntil,
} from "./_helpers/prometheus.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts", import.meta.url));
const NAME = "web.example.test";

interface Ports {
  tcp: number;
  https: number;
}

function adminConfig(
  echoPort: number,
  webPort: number,
  probePort: number,
  ports: Ports,
): string {
  return `version: 1
log: { level: info, format: text, access: true }
shutdown_timeout: 3s
admin: { bind: "127.0.0.1:0" }
certificates:
  files: [{ cert: ${certPath("edge-wildcard")}, key: ${keyPath("edge-wildcard")} }]
  watch_interval: 0s
backends:
  echo: { servers: ["127.0.0.1:${echoPort}"] }
  web: { servers: ["127.0.0.1:${webPort}"] }
  probe:
    servers: ["127.0.0.1:${probePort}"]
    health_check: { type: tcp, interval: 200ms, timeout: 100ms, fall: 2, rise: 1 }
listeners:
  tcp:
    bind: "127.0.0.1:${ports.tcp}"
    routes:
      - forward: echo
  https:
    bind: "127.0.0.1:${ports.https}"
    routes:
      - { name: web, sni: ${NAME}, edge: web }
      - { name: probe, sni: probe.example.test, forward: probe }
`;
}

/** Fetches `path` from the admin listener. */
async function admin(base: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Headless Chromium as TESTING.md describes it, with its console sent to stderr. */
async function chromiumScreenshot(url: string, screenshot: string) {
  const chromium = requireTool("chromium", "chromium");
  await using profile = await makeTempDir("edgemux-chromium-");
  const result = await run(chromium, [
    ...HEADLESS_CHROMIUM_FLAGS,
    `--user-data-dir=${profile.path}`,
    "--enable-logging=stderr",
    "--v=0",
    "--hide-scrollbars",
    "--window-size=1280,1400",
    `--screenshot=${screenshot}`,
    url,
  ], { timeoutMs: 45_000 });
  equal(result.code, 0, `chromium failed:\n${result.stderr}`);
  // Chromium writes page console messages (CSP violations, failed loads, script errors) as
  // `[pid:tid:time:LEVEL:CONSOLE(line)] "message", source: url (line)`.
  const console = result.stderr.split("\n").filter((l) => /:CONSOLE[:(]/.test(l));
  return { console, stderr: result.stderr };
}

/** Whether a PNG file starts with the PNG signature and has the given size. */
async function pngSize(path: string): Promise<{ width: number; height: number }> {
  const bytes = await Deno.readFile(path);
  deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** The counters a set of connections through the tcp listener must produce. */
function tcpTotals(m: Exposition) {
  return {
    connections: m.sum("edgemux_connections_total", { listener: "tcp" }),
    clientClosed: m.sum("edgemux_connections_total", { listener: "tcp", end: "client-closed" }),
    up: m.value("edgemux_connection_bytes_total", { listener: "tcp", direction: "up" }),
    down: m.value("edgemux_connection_bytes_total", { listener: "tcp", direction: "down" }),
    durations: m.histogram("edgemux_connection_duration_seconds", { listener: "tcp" })[0]?.count,
  };
}

Deno.test("the admin listener's /metrics counts the traffic sent, and its other endpoints answer", async (t) => {
  await using echo = await startTcpBackend("echo", "echo");
  await using web = startDownloadBackend();
  const probe = await startTcpBackend("probe", "echo");
  await using _probe = probe;
  await using dir = await makeTempDir("edgemux-admin-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    adminConfig(echo.port, web.port, probe.port, { tcp: 0, https: 0 }),
  );
  await using cli = await startEdgemuxCli(file);
  const base = cli.adminUrl;
  const ports = { tcp: cli.port("tcp"), https: cli.port("https") };

  await t.step("/healthz, /readyz, 404 for other paths, 405 for other methods", async () => {
    const healthz = await admin(base, "/healthz");
    equal(healthz.status, 200);
    equal(healthz.body, "ok\n");
    const readyz = await admin(base, "/readyz");
    equal(readyz.status, 200);
    equal(readyz.body, "ready\n");
    for (const path of ["/nope", "/metrics/", "/status", "/healthz/x", "/index.html"]) {
      equal((await admin(base, path)).status, 404, path);
    }
    for (const method of ["POST", "PUT", "DELETE"]) {
      const res = await admin(base, "/metrics", { method, body: "x" });
      equal(res.status, 405, method);
      equal(res.headers.get("allow"), "GET, HEAD");
    }
    const head = await admin(base, "/metrics", { method: "HEAD" });
    equal(head.status, 200);
    equal(head.body, "");
    const metrics = await admin(base, "/metrics");
    equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    equal(metrics.headers.get("cache-control"), "no-store");
    parsePrometheus(metrics.body);
    await promtoolCheck(metrics.body);
  });

  await t.step("7 TCP connections: connections, ends, bytes both ways and durations", async () => {
    const sizes = [1, 2, 3, 4, 5, 6, 7].map((k) => k * 1000 + k);
    const sent = sizes.reduce((a, b) => a + b, 0);
    // While one is open, the active gauge says so.
    const held = await Deno.connect({ hostname: "127.0.0.1", port: ports.tcp });
    await writeAll(held, new Uint8Array(sizes[0]).fill(1));
    let m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_connections_active", { listener: "tcp" }) === 1,
    );
    equal(m.value("edgemux_connections_active", { listener: "tcp" }), 1);
    await held.closeWrite();
    equal((await readAll(held)).length, sizes[0]);
    held.close();
    for (const size of sizes.slice(1)) {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port: ports.tcp });
      await writeAll(conn, new Uint8Array(size).fill(size & 0xff));
      await conn.closeWrite();
      equal((await readAll(conn)).length, size);
    }
    m = await scrapeUntil(`${base}/metrics`, (m) => tcpTotals(m).durations === 7);
    deepEqual(tcpTotals(m), {
      connections: 7,
      clientClosed: 7,
      up: sent,
      down: sent,
      durations: 7,
    });
    equal(m.value("edgemux_connections_active", { listener: "tcp" }), 0);
  });

  await t.step(
    "HTTP requests through edge: one count per status, and a duration each",
    async () => {
      const curl = requireTool("curl", "curl");
      const paths = ["/a", "/b", "/c", "/status/404", "/status/404", "/status/503"];
      const result = await run(curl, [
        "-sS",
        "--http1.1",
        "--resolve",
        `${NAME}:${ports.https}:127.0.0.1`,
        "--cacert",
        certPath("ca"),
        "-w",
        "%{http_code}\n",
        ...paths.flatMap((p) => ["-o", "/dev/null", `https://${NAME}:${ports.https}${p}`]),
      ]);
      equal(result.code, 0, result.stderr);
      equal(result.stdout, "200\n200\n200\n404\n404\n503\n");
      const m = await scrapeUntil(
        `${base}/metrics`,
        (m) => m.sum("edgemux_connections_total", { listener: "https" }) === 1,
      );
      const requests = (code: string) =>
        m.value("edgemux_http_requests_total", {
          listener: "https",
          route: "web",
          backend: "web",
          code,
        });
      deepEqual([requests("200"), requests("404"), requests("503")], [3, 2, 1]);
      equal(m.sum("edgemux_http_requests_total"), 6);
      const [durations] = m.histogram("edgemux_http_request_duration_seconds", {
        listener: "https",
        route: "web",
      });
      equal(durations.count, 6);
      equal(m.histogram("edgemux_http_upstream_response_seconds", { backend: "web" })[0].count, 6);
      // curl reused one connection for all six.
      equal(m.sum("edgemux_connections_total", { listener: "https" }), 1);
      const bodies = paths.map((p) =>
        p.startsWith("/status/") ? `status ${p.slice(8)}\n` : `ok ${p}\n`
      );
      const up = m.value("edgemux_connection_bytes_total", { listener: "https", direction: "up" });
      const down = m.value("edgemux_connection_bytes_total", {
        listener: "https",
        direction: "down",
      });
      const requestLines = paths.reduce((n, p) => n + `GET ${p} HTTP/1.1\r\n`.length, 0);
      ok(up !== undefined && up >= requestLines, `up=${up}, the request lines alone are longer`);
      const bodyBytes = bodies.reduce((n, b) => n + b.length, 0);
      ok(down !== undefined && down >= bodyBytes, `down=${down}, the bodies alone are longer`);
    },
  );

  await t.step("a server's up gauge flips when it dies and its health check notices", async () => {
    const up = { backend: "probe", server: `127.0.0.1:${probe.port}` };
    let m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_backend_server_up", up) === 1,
    );
    equal(m.value("edgemux_backend_server_up", up), 1);
    await probe.close();
    m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_backend_server_up", up) === 0,
      5000,
    );
    equal(m.value("edgemux_backend_server_up", up), 0);
    equal(
      m.value("edgemux_backend_server_up", { backend: "echo", server: `127.0.0.1:${echo.port}` }),
      1,
    );
    const status = JSON.parse((await admin(base, "/status.json")).body) as {
      backends: {
        name: string;
        healthCheck: string | null;
        servers: { up: boolean; reason: string | null }[];
      }[];
    };
    const probeStatus = status.backends.find((b) => b.name === "probe");
    equal(probeStatus?.healthCheck, "tcp");
    equal(probeStatus?.servers[0].up, false);
    match(probeStatus?.servers[0].reason ?? "", /refused/i);
    await cli.waitForOutput(/level=warning msg="server down" backend=probe/, 5000);
  });

  await t.step("reloads count by result, and the traffic counters survive them", async () => {
    // The same config with the listeners' ports written out, so they stay where they are.
    await replaceFile(file, adminConfig(echo.port, web.port, probe.port, ports));
    cli.signal("SIGHUP");
    let m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_reloads_total", { result: "success" }) === 1,
    );
    equal(m.value("edgemux_reloads_total", { result: "success" }), 1);
    const stamp = m.value("edgemux_last_reload_timestamp_seconds", { result: "success" }) ?? 0;
    ok(Math.abs(stamp - Date.now() / 1000) < 30, `last reload at ${stamp}`);
    await replaceFile(file, "version: 1\nlisteners: {}\nbogus: true\n");
    cli.signal("SIGHUP");
    m = await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_reloads_total", { result: "failure" }) === 1,
    );
    equal(m.value("edgemux_reloads_total", { result: "success" }), 1);
    equal(m.value("edgemux_reloads_total", { result: "failure" }), 1);
    equal(tcpTotals(m).connections, 7);
    equal(m.sum("edgemux_http_requests_total"), 6);
    await promtoolCheck((await admin(base, "/metrics")).body);
    // The log is written in batches; the metrics can be ahead of it.
    await cli.waitForOutput("reload failed; the running config stays", 5000);
    equal(logLines(cli.output(), "config reloaded").length, 1);
    equal(logLines(cli.output(), "reload failed; the running config stays").length, 1);
  });

  await t.step("headless Chromium renders the status page with no console message", async () => {
    const page = await admin(base, "/");
    equal(page.status, 200);
    equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    equal(
      page.headers.get("content-security-policy"),
      "default-src 'none'; style-src 'unsafe-inline'",
    );
    for (const text of ["tcp", "https", "web", "probe", "echo", "down", "1 reloads"]) {
      ok(page.body.includes(text), `the page does not mention ${text}`);
    }
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const screenshot = `${ARTIFACTS}/status-page.png`;
    await Deno.remove(screenshot).catch(() => {});
    const shot = await chromiumScreenshot(`${base}/`, screenshot);
    deepEqual(shot.console, [], `console messages:\n${shot.console.join("\n")}`);
    deepEqual(await pngSize(screenshot), { width: 1280, height: 1400 });
  });

  await t.step("/readyz says 503 while draining, and edgemux exits 0", async () => {
    const held = await Deno.connect({ hostname: "127.0.0.1", port: ports.tcp });
    await writeAll(held, new Uint8Array([1, 2, 3]));
    await scrapeUntil(
      `${base}/metrics`,
      (m) => m.value("edgemux_connections_active", { listener: "tcp" }) === 1,
    );
    cli.signal("SIGTERM");
    await cli.waitForOutput("draining", 5000);
    const readyz = await admin(base, "/readyz");
    equal(readyz.status, 503);
    equal(readyz.body, "not ready\n");
    equal((await admin(base, "/healthz")).status, 200);
    await held.closeWrite();
    equal((await readAll(held)).length, 3);
    held.close();
    const exit = await cli.exited;
    equal(exit.code, 0, cli.output());
  });
});

Deno.test("the console check does catch a page that breaks its CSP (a control for the test above)", async () => {
  await using server = serveHttp(() =>
    new Response(
      '<!doctype html><title>x</title><style>p{color:red}</style><p>styled</p><img src="/a.png">',
      {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
      },
    )
  );
  await using dir = await makeTempDir("edgemux-chromium-control-");
  const shot = await chromiumScreenshot(
    `http://127.0.0.1:${server.port}/`,
    `${dir.path}/control.png`,
  );
  equal(shot.console.length, 1, shot.stderr);
  match(shot.console[0], /violates the following Content Security Policy directive/);
});

// ---------------------------------------------------------------------------------------------
// Who may use the admin listener: the Host it is bound for, and the bearer token
// ---------------------------------------------------------------------------------------------

/** Sends one raw HTTP/1.1 request (so any Host can be sent) and returns status and headers. */
async function rawAdmin(
  port: number,
  target: string,
  headers: string[],
  version = "HTTP/1.1",
): Promise<{ status: number; head: string }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const text = [`GET ${target} ${version}`, ...headers, "connection: close", "", ""].join("\r\n");
  await writeAll(conn, new TextEncoder().encode(text));
  const reply = new TextDecoder().decode(await readAll(conn));
  const head = reply.slice(0, reply.indexOf("\r\n\r\n"));
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head };
}

function adminOnlyConfig(admin: string): string {
  return `version: 1
log: { level: info, format: text, access: false }
shutdown_timeout: 1s
admin: ${admin}
listeners:
  l:
    bind: "127.0.0.1:0"
    routes: [{ reject: true }]
`;
}

Deno.test("the admin listener answers only the names it is bound for (421 otherwise), whatever the port", async () => {
  await using dir = await makeTempDir("edgemux-admin-host-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    adminOnlyConfig('{ bind: "127.0.0.1:0", hosts: [admin.example.test, 192.0.2.9] }'),
  );
  await using cli = await startEdgemuxCli(file);
  const port = Number(new URL(cli.adminUrl).port);
  const served = [
    `127.0.0.1:${port}`,
    "127.0.0.1",
    `localhost:${port}`,
    "LocalHost.:8080", // an SSH tunnel from another local port
    "admin.example.test",
    `Admin.Example.Test.:${port}`,
    "192.0.2.9:443", // an address in admin.hosts (say, the public side of a NAT)
  ];
  for (const host of served) {
    const res = await rawAdmin(port, "/metrics", [`host: ${host}`]);
    equal(res.status, 200, `Host: ${host}\n${res.head}`);
  }
  // HTTP/1.0 without Host: Deno fills in localhost; no browser sends such a request.
  equal((await rawAdmin(port, "/healthz", [], "HTTP/1.0")).status, 200);
  const refused = [
    "evil.example.test", // DNS rebinding: the attacker's name, resolved to 127.0.0.1
    `evil.example.test:${port}`,
    "localhost.evil.example.test",
    "127.0.0.1.nip.io",
    "admin.example.test.evil",
    "[::1]", // another address than the one bound
    "10.0.0.1",
    "127.0.0.2",
  ];
  for (const host of refused) {
    for (const path of ["/", "/metrics", "/status.json", "/healthz"]) {
      const res = await rawAdmin(port, path, [`host: ${host}`]);
      equal(res.status, 421, `Host: ${host} ${path}\n${res.head}`);
    }
  }
  // An absolute request target names the host too, and is checked as well.
  equal(
    (await rawAdmin(port, "http://evil.example.test/metrics", ["host: localhost"])).status,
    421,
  );
  equal(
    (await rawAdmin(port, "http://localhost/metrics", ["host: evil.example.test"])).status,
    421,
  );
});

Deno.test("with admin.token_file, every request needs the bearer token (401 otherwise), and a reload changes it", async () => {
  await using dir = await makeTempDir("edgemux-admin-token-");
  const tokenFile = `${dir.path}/admin-token`;
  const first = "0123456789abcdef0123456789abcdef";
  await Deno.writeTextFile(tokenFile, `${first}\n`);
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    adminOnlyConfig(`{ bind: "127.0.0.1:0", token_file: ${tokenFile} }`),
  );
  await using cli = await startEdgemuxCli(file);
  const port = Number(new URL(cli.adminUrl).port);
  const host = `host: 127.0.0.1:${port}`;
  for (const path of ["/", "/metrics", "/status.json", "/healthz", "/readyz", "/nope"]) {
    const res = await rawAdmin(port, path, [host]);
    equal(res.status, 401, `${path} without a token\n${res.head}`);
    match(res.head, /www-authenticate: Bearer realm="edgemux admin"/i);
  }
  const wrong = [
    `Bearer ${first.slice(0, -1)}`,
    `Bearer ${first}x`,
    `Bearer ${first.toUpperCase()}`,
    `Basic ${btoa(`admin:${first}`)}`,
    first,
    "Bearer",
    `Bearer ${first} ${first}`,
  ];
  for (const auth of wrong) {
    equal((await rawAdmin(port, "/metrics", [host, `authorization: ${auth}`])).status, 401, auth);
  }
  for (const auth of [`Bearer ${first}`, `bearer ${first}`, `BEARER  ${first}`]) {
    equal((await rawAdmin(port, "/metrics", [host, `authorization: ${auth}`])).status, 200, auth);
  }
  // The name comes first: the right token under a foreign name is still refused.
  equal(
    (await rawAdmin(port, "/metrics", [
      "host: evil.example.test",
      `authorization: Bearer ${first}`,
    ]))
      .status,
    421,
  );
  // fetch, as a scraper would.
  const res = await fetch(`${cli.adminUrl}/metrics`, {
    headers: { authorization: `Bearer ${first}` },
  });
  equal(res.status, 200);
  parsePrometheus(await res.text());

  // A new token in the file takes effect at the next reload; the old one stops working.
  const second = "fedcba9876543210fedcba9876543210";
  await replaceFile(tokenFile, second);
  cli.signal("SIGHUP");
  await cli.waitForOutput("config reloaded", 10_000);
  equal((await rawAdmin(port, "/metrics", [host, `authorization: Bearer ${second}`])).status, 200);
  equal((await rawAdmin(port, "/metrics", [host, `authorization: Bearer ${first}`])).status, 401);
});

Deno.test("edgemux refuses to start with a token file that is missing or holds a weak token", async () => {
  await using dir = await makeTempDir("edgemux-admin-token-");
  const tokenFile = `${dir.path}/admin-token`;
  await Deno.writeTextFile(tokenFile, "short\n");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    adminOnlyConfig(`{ bind: "127.0.0.1:0", token_file: ${tokenFile} }`),
  );
  const weak = await run(Deno.execPath(), ["run", "-A", "main.ts", "check", "-c", file], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
  });
  equal(weak.code, 1, weak.stderr);
  match(weak.stderr, /admin\.token_file: the token in .*admin-token is 5 characters long/);
  await Deno.remove(tokenFile);
  const missing = await run(Deno.execPath(), ["run", "-A", "main.ts", "check", "-c", file], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
  });
  equal(missing.code, 1, missing.stderr);
  match(missing.stderr, /cannot read .*admin-token: it does not exist/);
});
