/**
 * Graceful stop of `edgemux run` on SIGTERM: transfers under way finish within
 * `shutdown_timeout`, one that would outlast it is cut at the deadline, idle keep-alive
 * connections close at once, and the process exits 0 every time.
 */

import { equal, match, notEqual, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { certPath, keyPath, readCert } from "./_helpers/certs.ts";
import { patternSha256, startDownloadBackend } from "./_helpers/download_backend.ts";
import { type EdgemuxCli, logLines, startEdgemuxCli } from "./_helpers/edgemux_cli.ts";
import { type BackgroundProcess, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";
import {
  connectTlsByName,
  ConnReader,
  parseResponseHead,
  ReadTimeout,
  writeFully,
} from "./_helpers/websocket.ts";

const encoder = new TextEncoder();
const CA = certPath("ca");
const NAME = "files.example.test";

/** Starts edgemux on a config with an edge listener and a redirect listener. */
async function startCli(dir: string, backendPort: number, shutdownTimeout: string) {
  const file = `${dir}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
log: { level: info, format: text, access: true }
shutdown_timeout: ${shutdownTimeout}
certificates:
  files: [{ cert: ${certPath("edge-wildcard")}, key: ${keyPath("edge-wildcard")} }]
  watch_interval: 0s
backends:
  files: { servers: ["127.0.0.1:${backendPort}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: files, sni: ${NAME}, edge: files }
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: https
`,
  );
  return await startEdgemuxCli(file);
}

/** Starts curl downloading `path` from the edge listener into `saved`. */
function startDownload(
  cli: EdgemuxCli,
  path: string,
  saved: string,
  curlOptions: string[] = [],
): BackgroundProcess {
  const port = cli.port("https");
  return startProcess(requireTool("curl", "curl"), [
    "-sS",
    ...curlOptions,
    "-o",
    saved,
    "-w",
    "%{http_code} %{size_download}\n",
    "--resolve",
    `${NAME}:${port}:127.0.0.1`,
    "--cacert",
    CA,
    `https://${NAME}:${port}${path}`,
  ]);
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Resolves with the time `promise` settled, as performance.now(). */
async function settledAt(promise: Promise<unknown>): Promise<number> {
  await promise.catch(() => {});
  return performance.now();
}

/**
 * Starts `count` downloads with `curlOptions`, holds each after 256 KiB, sends SIGTERM, lets
 * them go on, and checks that every one arrives whole, that new connections are refused while
 * they drain, and that edgemux exits 0 soon after the last one, well before the deadline.
 */
async function drainDownloads(curlOptions: string[], count: number): Promise<void> {
  await using backend = startDownloadBackend();
  await using dir = await makeTempDir("edgemux-shutdown-");
  await using cli = await startCli(dir.path, backend.port, "10s");
  const httpsPort = cli.port("https");

  // 4 MiB each, read by a client limited to 8 MB/s: each takes about half a second once
  // released, so it is mid-transfer through the whole drain.
  const SIZE = 4 * 1024 * 1024;
  const HOLD = 256 * 1024;
  const downloads = Array.from({ length: count }, (_, i) => ({
    id: `d${i}`,
    saved: `${dir.path}/download-${i}.bin`,
  }));
  const curls = downloads.map((d) =>
    startDownload(
      cli,
      `/download?id=${d.id}&bytes=${SIZE}&hold=${HOLD}`,
      d.saved,
      [...curlOptions, "--limit-rate", "8M"],
    )
  );
  try {
    for (const d of downloads) await backend.waitForSent(d.id, HOLD, 10_000);

    const signalled = performance.now();
    cli.signal("SIGTERM");
    await cli.waitForOutput(/stopping signal=SIGTERM timeout_ms=10000/, 5000);
    await cli.waitForOutput(new RegExp(`draining connections=${count} `), 5000);
    let refused = "";
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: httpsPort })).close();
    } catch (e) {
      refused = e instanceof Error ? e.name : String(e);
    }
    equal(refused, "ConnectionRefused", "a new connection was accepted while stopping");
    for (const d of downloads) backend.release(d.id);

    const curlsDone = settledAt(Promise.all(curls.map((c) => c.exited)));
    const exitDone = settledAt(cli.exited);
    const results = await Promise.all(
      curls.map(async (c, i) => ({
        code: (await c.exited).code,
        output: c.output(),
        sha: await fileSha256(downloads[i].saved).catch(() => "missing"),
      })),
    );
    const exit = await cli.exited;
    const exitedAt = await exitDone;
    const lastDownload = await curlsDone;

    for (const [i, r] of results.entries()) {
      equal(
        `${r.code} ${r.output.trim()}`,
        `0 200 ${SIZE}`,
        `download ${i} did not arrive whole (curl: ${r.output.trim()}); edgemux's log:\n` +
          cli.output(),
      );
      equal(r.sha, patternSha256(SIZE), `download ${i}`);
    }
    equal(exit.code, 0, cli.output());
    equal(exit.signal, null);
    // It stops as soon as the transfers are done, not at the 10 s deadline.
    ok(exitedAt - lastDownload < 2000, `exited ${exitedAt - lastDownload} ms after the downloads`);
    ok(exitedAt - signalled < 8000, `exited ${exitedAt - signalled} ms after SIGTERM`);
    ok(!cli.output().includes("closing connections still open"), cli.output());
    const access = logLines(cli.output(), "connection").filter((f) => f.sni === NAME);
    equal(access.length, count, cli.output());
    for (const a of access) ok(Number(a.down) > SIZE, `down=${a.down}`);
    match(cli.output(), /level=info msg=stopped$/m);
  } finally {
    for (const c of curls) await c.stop();
  }
}

Deno.test("SIGTERM lets HTTP/1.1 downloads under way finish whole, refuses new connections, and exits 0", async () => {
  await drainDownloads(["--http1.1"], 2);
});

Deno.test("SIGTERM lets HTTP/2 downloads under way finish whole, refuses new connections, and exits 0", async () => {
  await drainDownloads(["--http2"], 3);
});

Deno.test("a download that would outlast shutdown_timeout is cut at the deadline, and edgemux exits 0", async () => {
  await using backend = startDownloadBackend();
  await using dir = await makeTempDir("edgemux-shutdown-");
  await using cli = await startCli(dir.path, backend.port, "1s");

  // Held after 1 MiB: it would never end on its own.
  const SIZE = 8 * 1024 * 1024;
  const saved = `${dir.path}/download.bin`;
  await using curl = startDownload(
    cli,
    `/download?id=long&bytes=${SIZE}&hold=${1024 * 1024}`,
    saved,
  );
  await backend.waitForSent("long", 1024 * 1024, 10_000);

  const signalled = performance.now();
  const exitDone = settledAt(cli.exited);
  cli.signal("SIGTERM");
  const exit = await cli.exited;
  const took = await exitDone - signalled;
  equal(exit.code, 0, cli.output());
  equal(exit.signal, null);
  ok(took >= 900, `exited ${Math.round(took)} ms after SIGTERM, before the 1 s deadline`);
  ok(took < 4000, `exited ${Math.round(took)} ms after SIGTERM, long after the 1 s deadline`);
  match(
    cli.output(),
    /level=warning msg="closing connections still open at the shutdown deadline" connections=1/,
  );

  const curlExit = await curl.exited;
  notEqual(curlExit.code, 0, `curl got the whole body: ${curl.output()}`);
  const got = (await Deno.stat(saved).catch(() => ({ size: 0 }))).size;
  ok(got < SIZE, `${got} bytes arrived of ${SIZE}`);
});

/** An HTTP/1.1 GET on an open connection; returns the head once the whole body is read. */
async function getKeepAlive(
  conn: Deno.Conn,
  reader: ConnReader,
  host: string,
  path: string,
) {
  await writeFully(conn, encoder.encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
  const headBytes = await reader.readUntil("\r\n\r\n", 5000);
  ok(headBytes, "the server closed before answering");
  const head = parseResponseHead(headBytes);
  const length = Number(head.headers["content-length"] ?? "0");
  if (length > 0) await reader.readExactly(length, 5000);
  return head;
}

/** Resolves with how long after `since` the peer closed, or rejects after `timeoutMs`. */
async function closedAfter(reader: ConnReader, since: number, timeoutMs: number) {
  await reader.readToEnd(timeoutMs);
  return performance.now() - since;
}

/** HTTP/2 frame header: length (24 bits), type, flags, stream id (31 bits). */
function h2Frame(type: number, flags: number, payload = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = (payload.length >> 16) & 0xff;
  out[1] = (payload.length >> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  out.set(payload, 9);
  return out;
}

const H2_SETTINGS = 0x4;
const H2_GOAWAY = 0x7;
const H2_WINDOW_UPDATE = 0x8;

/** Reads HTTP/2 frames until EOF; returns the types seen. */
async function h2FramesUntilEof(reader: ConnReader, timeoutMs: number): Promise<number[]> {
  const deadline = performance.now() + timeoutMs;
  const types: number[] = [];
  for (;;) {
    let header: Uint8Array;
    try {
      header = await reader.readExactly(9, Math.max(1, deadline - performance.now()));
    } catch (e) {
      if (e instanceof ReadTimeout) throw e;
      return types; // Closed.
    }
    const length = (header[0] << 16) | (header[1] << 8) | header[2];
    types.push(header[3]);
    if (length > 0) await reader.readExactly(length, Math.max(1, deadline - performance.now()));
  }
}

Deno.test("SIGTERM closes idle keep-alive connections at once while a busy one drains", async () => {
  await using backend = startDownloadBackend();
  await using dir = await makeTempDir("edgemux-shutdown-");
  await using cli = await startCli(dir.path, backend.port, "5s");
  const httpsPort = cli.port("https");
  const httpPort = cli.port("http");

  // Busy: a download held open until the test releases it (HTTP/1.1, so that HTTP/2's own
  // drain trouble, tested above, stays out of this test).
  const SIZE = 2 * 1024 * 1024;
  const saved = `${dir.path}/download.bin`;
  await using curl = startDownload(
    cli,
    `/download?id=busy&bytes=${SIZE}&hold=${512 * 1024}`,
    saved,
    ["--http1.1"],
  );
  await backend.waitForSent("busy", 512 * 1024, 10_000);

  // Idle 1: HTTP/1.1 over TLS after one request answered with keep-alive.
  const { conn: tls } = await connectTlsByName({
    port: httpsPort,
    serverName: NAME,
    caCerts: [readCert("ca")],
  });
  using _tls = tls;
  const tlsReader = new ConnReader(tls);
  const first = await getKeepAlive(tls, tlsReader, NAME, "/hello");
  equal(first.status, 200);
  notEqual(first.headers["connection"]?.toLowerCase(), "close");

  // Idle 2: plain HTTP on the redirect listener after one redirect.
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: httpPort });
  using _plain = plain;
  const plainReader = new ConnReader(plain);
  const redirect = await getKeepAlive(plain, plainReader, `${NAME}:${httpPort}`, "/x");
  equal(redirect.status, 308);
  notEqual(redirect.headers["connection"]?.toLowerCase(), "close");

  // Idle 3: HTTP/2 with the connection preface and settings exchanged, and no request yet.
  const { conn: h2, alpn } = await connectTlsByName({
    port: httpsPort,
    serverName: NAME,
    caCerts: [readCert("ca")],
    alpn: ["h2"],
  });
  using _h2 = h2;
  equal(alpn, "h2");
  const h2Reader = new ConnReader(h2);
  await writeFully(h2, encoder.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  await writeFully(h2, h2Frame(H2_SETTINGS, 0));
  const serverSettings = await h2Reader.readExactly(9, 5000);
  equal(serverSettings[3], H2_SETTINGS);
  const settingsLength = (serverSettings[0] << 16) | (serverSettings[1] << 8) | serverSettings[2];
  if (settingsLength > 0) await h2Reader.readExactly(settingsLength, 5000);
  await writeFully(h2, h2Frame(H2_SETTINGS, 0x1));

  const signalled = performance.now();
  cli.signal("SIGTERM");
  const [tlsMs, plainMs, h2Types] = await Promise.all([
    closedAfter(tlsReader, signalled, 5000),
    closedAfter(plainReader, signalled, 5000),
    h2FramesUntilEof(h2Reader, 5000),
  ]);
  const h2Ms = performance.now() - signalled;
  ok(tlsMs < 1000, `the idle HTTP/1.1 connection closed ${Math.round(tlsMs)} ms after SIGTERM`);
  ok(
    plainMs < 1000,
    `the idle plain HTTP connection closed ${Math.round(plainMs)} ms after SIGTERM`,
  );
  ok(h2Ms < 1000, `the idle HTTP/2 connection closed ${Math.round(h2Ms)} ms after SIGTERM`);
  // RFC 9113 §6.8 says a server SHOULD send GOAWAY first; Deno's HTTP/2 server (which edgemux
  // serves h2 with) closes an idle connection without one when its signal aborts, as a plain
  // Deno.serve does too. Clients retry on a fresh connection either way, so only the close is
  // required here, and nothing but control frames may precede it.
  ok(
    h2Types.every((t) => t === H2_SETTINGS || t === H2_WINDOW_UPDATE || t === H2_GOAWAY),
    `HTTP/2 frames before the close: ${h2Types.join(", ")}`,
  );

  // The busy download was left alone: still open, neither finished nor cut.
  const state = backend.download("busy");
  ok(state && !state.finished && !state.cancelled, JSON.stringify(state));
  equal(
    await Promise.race([cli.exited.then(() => "exited"), Promise.resolve("running")]),
    "running",
  );

  backend.release("busy");
  const curlExit = await curl.exited;
  const downloadedAt = performance.now();
  equal(curlExit.code, 0, curl.output());
  equal(curl.output(), `200 ${SIZE}\n`);
  equal(await fileSha256(saved), patternSha256(SIZE));
  const exitedAt = await settledAt(cli.exited);
  equal((await cli.exited).code, 0, cli.output());
  // With the busy download done and every idle connection closed, nothing is left to drain:
  // edgemux must not sit out the 5 s deadline.
  ok(
    exitedAt - downloadedAt < 2000,
    `edgemux exited ${Math.round(exitedAt - downloadedAt)} ms after the last transfer ended ` +
      `(${Math.round(exitedAt - signalled)} ms after SIGTERM, deadline 5000 ms); its log:\n` +
      cli.output(),
  );
  ok(!cli.output().includes("closing connections still open"), cli.output());
});
