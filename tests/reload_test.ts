/**
 * Reloads while traffic flows. In-process, a download, an SSH session and a WebSocket opened
 * before a series of reloads must finish intact after them, and listeners come and go as the
 * new config says. Through the CLI, SIGHUP and `watch_config` reload, and a broken config is
 * refused with its file and line while the running config keeps serving.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseConfig, prepareConfig } from "../mod.ts";
import { type HttpServer, serveHttp, startTcpBackend } from "./_helpers/backends.ts";
import { certPath, EDGE_CERTIFICATES, readCert } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { patternSha256, startDownloadBackend } from "./_helpers/download_backend.ts";
import {
  echoThrough,
  readAll,
  startEdgemux,
  TEST_CONFIG_FILE,
  writeAll,
} from "./_helpers/edgemux.ts";
import {
  echoForwardConfig,
  logLines,
  replaceFile,
  startEdgemuxCli,
} from "./_helpers/edgemux_cli.ts";
import { startProcess } from "./_helpers/process.ts";
import { scrapeUntil } from "./_helpers/prometheus.ts";
import { startSshd } from "./_helpers/sshd.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";
import { openWebSocket } from "./_helpers/websocket.ts";

const CA = certPath("ca");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a replaced generation's TLS listener and pools live on (proxy/generation.ts). */
const RETIRE_GRACE_MS = 5_000;

/** A WebSocket backend that echoes every message. */
function startWebSocketEcho(): HttpServer {
  return serveHttp((req) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("websocket only\n", { status: 400 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
}

/** Parses and prepares `yaml` as the in-process tests' reload does. */
async function prepared(yaml: string) {
  return await prepareConfig(parseConfig(yaml, TEST_CONFIG_FILE).config);
}

/** Sends `text` on an open connection and reads the same number of bytes back. */
async function echoOnce(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, encoder.encode(text));
  const want = encoder.encode(text).length;
  const buf = new Uint8Array(want);
  let got = 0;
  while (got < want) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error(`the connection closed after ${got} of ${want} bytes`);
    got += n;
  }
  return decoder.decode(buf);
}

/** Hex SHA-256 of a file, read in pieces. */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

Deno.test("a download, an SSH session and a WebSocket opened before 10 reloads finish intact after them", async () => {
  const curlBin = requireTool("curl", "curl");
  const ssh = requireTool("ssh", "openssh-client");
  await using files = startDownloadBackend();
  await using chat = startWebSocketEcho();
  await using sshd = await startSshd();
  await using dir = await makeTempDir("edgemux-reload-");

  // Each generation adds a route of its own, so every reload changes the route table, and the
  // listeners keep the ports they were first given.
  const config = (ports: { https: number; ssh: number }, generation: number) => `
version: 1
${EDGE_CERTIFICATES}
backends:
  files: { servers: ["127.0.0.1:${files.port}"] }
  chat: { servers: ["127.0.0.1:${chat.port}"] }
  sshd: { servers: ["127.0.0.1:${sshd.port}"] }
listeners:
  https:
    bind: "127.0.0.1:${ports.https}"
    routes:
      - { name: files, sni: files.example.test, edge: files }
      - { name: chat, sni: chat.example.test, edge: chat }
      - { name: gen${generation}, sni: gen${generation}.example.test, edge: files }
  ssh:
    bind: "127.0.0.1:${ports.ssh}"
    routes:
      - forward: sshd
`;
  await using edgemux = await startEdgemux(config({ https: 0, ssh: 0 }, 0));
  const ports = { https: edgemux.port("https"), ssh: edgemux.port("ssh") };
  const https = (name: string, path: string) => [
    "--resolve",
    `${name}:${ports.https}:127.0.0.1`,
    "--cacert",
    CA,
    `https://${name}:${ports.https}${path}`,
  ];

  // A 20 MiB download that stops halfway until the test lets it go on.
  const SIZE = 20 * 1024 * 1024;
  const saved = `${dir.path}/download.bin`;
  await using download = startProcess(curlBin, [
    "-sS",
    "--fail",
    "-o",
    saved,
    "-w",
    "%{http_code} %{size_download}\n",
    ...https("files.example.test", `/download?id=big&bytes=${SIZE}&hold=${SIZE / 2}`),
  ]);
  await files.waitForSent("big", SIZE / 2, 10_000);

  // An SSH session whose command waits for a file the test creates at the end.
  const go = `${dir.path}/ssh-may-finish`;
  await using session = startProcess(ssh, [
    ...sshd.sshArgs(ports.ssh),
    `echo session started; while [ ! -e ${go} ]; do sleep 0.05; done; echo session done`,
  ]);
  await session.waitForOutput("session started\n", 15_000);

  await using ws = await openWebSocket({
    port: ports.https,
    serverName: "chat.example.test",
    caCerts: [readCert("ca")],
    path: "/ws",
  });
  await ws.sendText("before any reload");
  deepEqual(await ws.receive(5000), { kind: "text", text: "before any reload" });

  for (let generation = 1; generation <= 10; generation++) {
    await edgemux.proxy.reload(await prepared(config(ports, generation)));
    // New connections follow the new rules at once...
    const now = await curl(https(`gen${generation}.example.test`, `/gen${generation}`));
    equal(now.status, 200, `gen${generation}: ${now.errorMessage} ${now.stderr}`);
    equal(now.body, `ok /gen${generation}\n`);
    // ...and the route of the generation before is gone (its handshake finds no route).
    const before = await curl(https(`gen${generation - 1}.example.test`, "/"));
    equal(before.status, 0, `gen${generation - 1} still answers after reload ${generation}`);
    // The WebSocket opened under the first config still echoes.
    await ws.sendText(`after reload ${generation}`);
    deepEqual(await ws.receive(5000), { kind: "text", text: `after reload ${generation}` });
  }
  deepEqual(edgemux.proxy.addrs.get("https")?.map((a) => a.port), [ports.https]);
  deepEqual(edgemux.proxy.addrs.get("ssh")?.map((a) => a.port), [ports.ssh]);

  // Replaced generations keep their internal TLS listener and pools for a grace period, then
  // close them: the open connections must outlive that too.
  await new Promise((r) => setTimeout(r, RETIRE_GRACE_MS + 500));
  await ws.sendText("after the grace period");
  deepEqual(await ws.receive(5000), { kind: "text", text: "after the grace period" });

  files.release("big");
  const downloaded = await download.exited;
  equal(downloaded.code, 0, download.output());
  equal(download.output(), `200 ${SIZE}\n`);
  equal(await fileSha256(saved), patternSha256(SIZE));

  await Deno.writeTextFile(go, "");
  const ended = await session.exited;
  equal(ended.code, 0, session.output());
  equal(session.output(), "session started\nsession done\n");

  await ws.close(1000, "done");
  const closing = await ws.receive(5000);
  equal(closing.kind, "close");

  // A forward-only listener relays without reading, so it never learns the protocol.
  const sshRecord = await edgemux.waitForRecord((r) => r.listener === "ssh", 5000);
  ok(["client-closed", "upstream-closed"].includes(sshRecord.end), JSON.stringify(sshRecord));
  const fileRecord = await edgemux.waitForRecord((r) => r.sni === "files.example.test", 5000);
  ok(fileRecord.down > SIZE, `the download's record counts ${fileRecord.down} bytes down`);
  equal(edgemux.proxy.status().reloads.count, 10);
});

/** A listener `name` on `port` forwarding to backend `echo`, as an entry under `listeners:`. */
function echoListener(name: string, port: number): string {
  return `  ${name}:\n    bind: "127.0.0.1:${port}"\n    routes:\n      - forward: echo\n`;
}

/** A config whose listeners (name → port) all forward to `echoPort`. */
function forwardConfig(echoPort: number, listeners: Record<string, number>): string {
  return `
version: 1
backends:
  echo: { servers: ["127.0.0.1:${echoPort}"] }
listeners:
` + Object.entries(listeners).map(([name, port]) => echoListener(name, port)).join("");
}

/** How a connection attempt to `port` ends: "connected", or the error's name. */
async function tryConnect(port: number): Promise<string> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return "connected";
  } catch (e) {
    return e instanceof Error ? e.name : String(e);
  }
}

Deno.test("a listener added by a reload accepts; a removed one stops accepting while its open connection finishes", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using edgemux = await startEdgemux(forwardConfig(echo.port, { old: 0, kept: 0 }));
  const oldPort = edgemux.port("old");
  const keptPort = edgemux.port("kept");

  using open = await Deno.connect({ hostname: "127.0.0.1", port: oldPort });
  equal(await echoOnce(open, "before the reload"), "before the reload");

  await edgemux.proxy.reload(
    await prepared(forwardConfig(echo.port, { kept: keptPort, added: 0 })),
  );
  const addedPort = edgemux.port("added");
  deepEqual([...edgemux.proxy.addrs.keys()].sort(), ["added", "kept"]);

  // Refused within a moment (right after reload() see the next test).
  const attempts: string[] = [];
  const deadline = performance.now() + 1000;
  while (attempts.at(-1) !== "ConnectionRefused" && performance.now() < deadline) {
    attempts.push(await tryConnect(oldPort));
  }
  equal(attempts.at(-1), "ConnectionRefused", `attempts: ${attempts.join(", ")}`);
  ok(!attempts.includes("connected"), `the removed listener accepted: ${attempts.join(", ")}`);

  for (const port of [addedPort, keptPort]) {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    equal(await echoOnce(conn, `through ${port}`), `through ${port}`);
  }

  // The connection accepted by the removed listener still relays, and ends normally.
  equal(await echoOnce(open, "after the reload"), "after the reload");
  await open.closeWrite();
  equal((await readAll(open)).length, 0);
  const record = await edgemux.waitForRecord((r) => r.listener === "old", 5000);
  equal(record.end, "client-closed");
  equal(record.up, "before the reload".length + "after the reload".length);
  equal(record.down, record.up);
});

Deno.test("once reload() resolves, a removed listener's port refuses connections", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using edgemux = await startEdgemux(forwardConfig(echo.port, { kept: 0 }));
  const keptPort = edgemux.port("kept");
  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    await edgemux.proxy.reload(
      await prepared(forwardConfig(echo.port, { kept: keptPort, doomed: 0 })),
    );
    const doomedPort = edgemux.port("doomed");
    await edgemux.proxy.reload(await prepared(forwardConfig(echo.port, { kept: keptPort })));
    seen.push(await tryConnect(doomedPort));
  }
  // A listening socket closed while its accept() is pending stays in LISTEN until the pending
  // accept settles; a client that connects in that window is accepted by the kernel and reset.
  deepEqual(seen, ["ConnectionRefused", "ConnectionRefused", "ConnectionRefused"]);
});

/** The CLI tests' config: an echo forward with an admin listener; `listeners` adds more. */
function cliConfig(backendPort: number, tcpPort: number, top = "", listeners = ""): string {
  return echoForwardConfig(backendPort, {
    tcpPort,
    top: `admin: { bind: "127.0.0.1:0" }\n${top}`,
    listeners,
  });
}

Deno.test("edgemux run reloads on SIGHUP, and refuses a broken config with its file and line while serving on", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-reload-cli-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(file, cliConfig(echo.port, 0));
  await using cli = await startEdgemuxCli(file);
  const tcp = cli.port("tcp");
  equal(await echoThrough(tcp, "first config"), "first config");

  // A good change: a second listener. The first keeps its port (written out now).
  await replaceFile(
    file,
    cliConfig(echo.port, tcp, "", echoListener("second", 0)),
  );
  cli.signal("SIGHUP");
  await cli.waitForOutput(/level=info msg="config reloaded" ms=\d+/, 10_000);
  const second = cli.port("second");
  equal(await echoThrough(second, "second listener"), "second listener");
  equal(await echoThrough(tcp, "first listener"), "first listener");
  let metrics = await scrapeUntil(
    `${cli.adminUrl}/metrics`,
    (m) => m.value("edgemux_reloads_total", { result: "success" }) === 1,
  );
  equal(metrics.value("edgemux_reloads_total", { result: "success" }), 1);
  // Both results start at 0 (docs/metrics.md), so the first failure is an increase.
  equal(metrics.value("edgemux_reloads_total", { result: "failure" }), 0);

  // A broken change: a misspelt key on line 11, column 9.
  const broken = cliConfig(echo.port, tcp).replace("- forward: echo", "- forwrd: echo");
  equal(broken.split("\n")[10], "      - forwrd: echo");
  await replaceFile(file, broken);
  cli.signal("SIGHUP");
  await cli.waitForOutput("reload failed; the running config stays", 10_000);
  const failure = logLines(cli.output(), "reload failed; the running config stays");
  equal(failure.length, 1, cli.output());
  match(
    failure[0].error,
    new RegExp(
      `^${
        RegExp.escape(file)
      }:11:9: error: listeners\\.tcp\\.routes\\[0\\]\\.forwrd: unknown key "forwrd"`,
    ),
  );
  match(failure[0].error, /\n {2}fix: did you mean "forward"\?/);
  // The whole running config stays: both listeners still relay.
  equal(await echoThrough(tcp, "still serving"), "still serving");
  equal(await echoThrough(second, "second still serving"), "second still serving");
  metrics = await scrapeUntil(
    `${cli.adminUrl}/metrics`,
    (m) => m.value("edgemux_reloads_total", { result: "failure" }) === 1,
  );
  equal(metrics.value("edgemux_reloads_total", { result: "success" }), 1);
  equal(metrics.value("edgemux_reloads_total", { result: "failure" }), 1);
  const status = await (await fetch(`${cli.adminUrl}/status.json`)).json() as {
    reloads: { count: number; failures: number; lastError: string | null };
  };
  equal(status.reloads.count, 1);
  equal(status.reloads.failures, 1);
  match(status.reloads.lastError ?? "", /unknown key "forwrd"/);

  const exit = await cli.stop();
  equal(exit.code, 0, cli.output());
});

Deno.test("edgemux run with watch_config reloads when the file changes on disk", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-reload-watch-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(file, cliConfig(echo.port, 0, "watch_config: true\n"));
  await using cli = await startEdgemuxCli(file);
  const tcp = cli.port("tcp");

  // Edited in place, as an editor without atomic saves would.
  await Deno.writeTextFile(
    file,
    cliConfig(echo.port, tcp, "watch_config: true\n", echoListener("late", 0)),
  );
  // The watcher polls every second and waits for two polls that agree.
  await cli.waitForOutput(/msg="config changed on disk; reloading" config=/, 10_000);
  await cli.waitForOutput(/level=info msg="config reloaded"/, 10_000);
  equal(await echoThrough(cli.port("late"), "added by the watcher"), "added by the watcher");
  equal(await echoThrough(tcp, "the first listener stays"), "the first listener stays");
  const metrics = await scrapeUntil(
    `${cli.adminUrl}/metrics`,
    (m) => m.value("edgemux_reloads_total", { result: "success" }) === 1,
  );
  equal(metrics.value("edgemux_reloads_total", { result: "success" }), 1);
  equal(logLines(cli.output(), "config reloaded").length, 1, cli.output());

  const exit = await cli.stop();
  equal(exit.code, 0, cli.output());
});
