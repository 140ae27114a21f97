/**
 * No byte a backend sends reaches any client but the one whose request it answers: backends
 * that misframe on purpose (tests/_helpers/lying_backend.ts) and a stock nginx that answers a
 * POST before reading its body, with an attacking and a victim client side by side over
 * HTTP/1.1 and HTTP/2. docs/security.md names these tests.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { runIsolation } from "../fuzz/isolation.ts";
import { serveTcp } from "./_helpers/backends.ts";
import { certPath, readCert } from "./_helpers/certs.ts";
import { curlHttps } from "./_helpers/curl.ts";
import { startSingleEdge } from "./_helpers/edgemux.ts";
import { LIE_SHAPES, lieBody, startLyingBackend } from "./_helpers/lying_backend.ts";
import { startNginx } from "./_helpers/nginx.ts";
import { pickFreePort } from "./_helpers/ports.ts";
import { requireTool } from "./_helpers/tools.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { connectTlsByName, ConnReader } from "./_helpers/websocket.ts";

const NAME = "app.example.test";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Requests `paths` in turn on one HTTP/2 connection (one curl); the bodies, in order. */
async function h2Batch(port: number, client: string, paths: string[]): Promise<string[]> {
  const r = await run("curl", [
    "-s",
    "--http2",
    "--cacert",
    certPath("ca"),
    "--resolve",
    `${NAME}:${port}:127.0.0.1`,
    "-H",
    `x-client: ${client}`,
    "-w",
    "\n--end %{http_version}--\n",
    ...paths.map((p) => `https://${NAME}:${port}${p}`),
  ]);
  equal(r.code, 0, r.stderr);
  const parts = r.stdout.split(/\n--end (\S+)--\n/);
  // split() with a group interleaves the bodies and the versions.
  for (let i = 1; i < parts.length; i += 2) equal(parts[i], "2", "curl did not speak HTTP/2");
  return parts.filter((_, i) => i % 2 === 0).slice(0, paths.length);
}

/** One HTTP/1.1 request on a new TLS connection; the raw response up to `readMs`. */
async function rawExchange(port: number, request: string, readMs = 1500): Promise<string> {
  const { conn } = await connectTlsByName({ port, serverName: NAME, caCerts: [readCert("ca")] });
  try {
    await conn.write(encoder.encode(request));
    const reader = new ConnReader(conn);
    let text = "";
    const until = Date.now() + readMs;
    while (Date.now() < until) {
      try {
        const chunk = await reader.readSome(until - Date.now());
        if (chunk === null) break;
        text += decoder.decode(chunk);
      } catch {
        break;
      }
    }
    return text;
  } finally {
    conn.close();
  }
}

Deno.test("two clients through a lying backend each receive only their own responses", async (t) => {
  await using backend = startLyingBackend();
  await using proxy = await startSingleEdge(backend.port, { name: "app", sni: NAME });
  const port = proxy.port("https");

  await t.step("HTTP/1.1: every lie, right after the attacker, then the victim", async () => {
    for (const shape of LIE_SHAPES) {
      const method = shape === "head-late-body" ? "HEAD" : "GET";
      const smuggled = `GET /lie/honest HTTP/1.1\r\nhost: x\r\nx-client: A\r\n\r\n`;
      const attack = `${method} /lie/${shape} HTTP/1.1\r\nhost: ${NAME}\r\nx-client: A\r\n` +
        (shape === "ignore-body"
          ? `content-length: ${smuggled.length}\r\n\r\n${smuggled}`
          : "\r\n");
      // The victim asks while the late bytes are still on their way, and again after.
      const attacker = rawExchange(port, attack, 300);
      await new Promise((r) => setTimeout(r, 5));
      const victims = [0, 15, 60].map(async (delay) => {
        await new Promise((r) => setTimeout(r, delay));
        return await rawExchange(
          port,
          `GET /lie/honest HTTP/1.1\r\nhost: ${NAME}\r\nx-client: B\r\nconnection: close\r\n\r\n`,
        );
      });
      const [, ...seen] = await Promise.all([attacker, ...victims]);
      for (const text of seen) {
        ok(text.startsWith("HTTP/1.1 200 "), `${shape}: the victim got ${JSON.stringify(text)}`);
        ok(!text.includes("client=A"), `${shape}: the victim received the attacker's bytes`);
        ok(text.includes("client=B;shape=honest"), `${shape}: ${JSON.stringify(text)}`);
      }
    }
  });

  await t.step("HTTP/1.1: a 101 the client did not ask for is a 502 and the end", async () => {
    const text = await rawExchange(
      port,
      `GET /lie/unsolicited-101 HTTP/1.1\r\nhost: ${NAME}\r\nx-client: A\r\n\r\n` +
        `GET /lie/honest HTTP/1.1\r\nhost: ${NAME}\r\nx-client: A\r\n\r\n`,
    );
    ok(text.startsWith("HTTP/1.1 502 "), text);
    ok(!text.includes("smuggled"), `bytes after the 101 reached the client: ${text}`);
    const record = await proxy.waitForRequest((r) => r.path === "/lie/unsolicited-101");
    equal(record.status, 502);
    equal(record.end, "upstream-invalid");
  });

  await t.step("fuzz: random lies, keep-alive and parallel connections, two clients", async () => {
    const seed = Number(Deno.env.get("EDGEMUX_FUZZ_SEED") ?? Date.now() % 100_000);
    const report = await runIsolation({ port, serverName: NAME, seed, requests: 200 });
    deepEqual(report.leaks, [], `seed ${seed}: a response reached the wrong client`);
    // The victim never depends on the attacker's luck: all its requests were answered.
    equal(report.own.B, report.sent.B, `seed ${seed}: ${JSON.stringify(report)}`);
    ok(report.own.A > 0, `seed ${seed}: the attacker got no answer at all`);
  });

  await t.step("HTTP/2: lies on one connection, honest streams on others", async () => {
    const lies = LIE_SHAPES.filter((s) => s !== "head-late-body").map((s) => `/lie/${s}`);
    const [a, ...bs] = await Promise.all([
      h2Batch(port, "A", lies),
      ...Array.from({ length: 4 }, () => h2Batch(port, "B", Array(6).fill("/lie/honest"))),
    ]);
    ok(!a.some((body) => body.includes("client=B")), `the attacker got the victim's: ${a}`);
    for (const b of bs) {
      equal(b.length, 6, String(b));
      for (const body of b) ok(body.startsWith("client=B;shape=honest"), body);
    }
  });

  await t.step("the victim's answers are counted as the backend tagged them", () => {
    // The helper's own contract, so a broken tag cannot make the checks above vacuous.
    equal(lieBody("B", "honest", 7), "client=B;shape=honest;n=7");
  });
});

Deno.test("HTTP/2: a POST answered early by nginx keeps its body off every other client's request", async (t) => {
  const nginxPort = pickFreePort();
  await using nginx = await startNginx({
    port: nginxPort,
    confBody: `
  client_max_body_size 100m;
  server {
    listen 127.0.0.1:${nginxPort};
    location /early { return 200 "early\\n"; }
    location /whoami { return 200 "$http_x_client\\n"; }
  }`,
  });
  await using proxy = await startSingleEdge(nginx.port, { name: "app", sni: NAME });
  const port = proxy.port("https");
  // The attacker's body is requests, so that if its tail ever went out on a connection that
  // carries another client's request, nginx would answer them as the victim's.
  const smuggled = `GET /whoami HTTP/1.1\r\nHost: ${NAME}\r\nX-Client: A\r\n\r\n`.repeat(6000);
  const bodyFile = await Deno.makeTempFile();
  await Deno.writeTextFile(bodyFile, smuggled);
  const bigFile = await Deno.makeTempFile();
  await Deno.writeTextFile(bigFile, smuggled.repeat(10));
  try {
    const victimLoop = async (until: Promise<unknown>) => {
      const answers: string[] = [];
      let done = false;
      until.finally(() => done = true);
      while (!done || answers.length === 0) {
        const r = await curlHttps(port, NAME, "/whoami", "2", ["-H", "X-Client: B"]);
        answers.push(r.body);
      }
      return answers;
    };

    // Slow, the body is still arriving long after the answer; fast, it is more than Deno's
    // HTTP/2 server takes in before the answer ends the stream.
    for (const [what, rate, copies] of [["a slow", "200K", 1], ["a fast", null, 10]] as const) {
      await t.step(`${what} body the backend never reads`, async () => {
        const attack = curlHttps(port, NAME, "/early", "2", [
          "-H",
          "X-Client: A",
          ...(rate === null ? [] : ["--limit-rate", rate]),
          "--data-binary",
          `@${copies === 1 ? bodyFile : bigFile}`,
        ]);
        const answers = await Promise.all([1, 2, 3].map(() => victimLoop(attack)));
        // The attacker's own upload ends too: its stream is not left waiting for a window.
        const a = await attack;
        equal(a.body, "early\n", a.stderr);
        for (const answer of answers.flat()) equal(answer, "B\n");
      });
    }

    await t.step("a stream reset in the middle of the body", async () => {
      const attacker = startProcess("curl", [
        "-s",
        "--http2",
        "--cacert",
        certPath("ca"),
        "--resolve",
        `${NAME}:${port}:127.0.0.1`,
        "-H",
        "X-Client: A",
        "--limit-rate",
        "50K",
        "--data-binary",
        `@${bodyFile}`,
        `https://${NAME}:${port}/early`,
      ]);
      const killed = new Promise((r) => setTimeout(r, 700)).then(() => attacker.stop("SIGKILL"));
      const answers = await victimLoop(killed);
      for (const answer of answers) equal(answer, "B\n");
      // And afterwards: a burst of victims on fresh connections.
      const after = await Promise.all(
        Array.from(
          { length: 6 },
          () => curlHttps(port, NAME, "/whoami", "2", ["-H", "X-Client: B"]),
        ),
      );
      for (const r of after) equal(r.body, "B\n");
    });
  } finally {
    await Deno.remove(bodyFile);
    await Deno.remove(bigFile);
  }
});

Deno.test("HTTP/2: one client connection with 100 streams in flight holds at most 32 upstream connections", async () => {
  // Answers every request 100 ms late, so that the streams pile up.
  const counter = { open: 0, most: 0 };
  await using backend = serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    counter.most = Math.max(counter.most, ++counter.open);
    try {
      const buf = new Uint8Array(16 * 1024);
      let seen = "";
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        seen += decoder.decode(buf.subarray(0, n));
        while (seen.includes("\r\n\r\n")) {
          seen = seen.slice(seen.indexOf("\r\n\r\n") + 4);
          await new Promise((r) => setTimeout(r, 100));
          await conn.write(encoder.encode("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"));
        }
      }
    } finally {
      counter.open--;
    }
  });
  await using proxy = await startSingleEdge(backend.port, { name: "app", sni: NAME });
  const port = proxy.port("https");
  const h2load = requireTool("h2load", "nghttp2-client");
  const r = await run(h2load, [
    "-n",
    "200",
    "-c",
    "1",
    "-m",
    "100",
    `--connect-to=127.0.0.1:${port}`,
    `https://${NAME}:${port}/`,
  ], { timeoutMs: 60_000 });
  ok(/200 succeeded/.test(r.stdout), r.stdout + r.stderr);
  ok(/h2/.test(r.stdout), `h2load did not negotiate h2: ${r.stdout}`);
  ok(counter.most <= 32, `${counter.most} upstream connections were open at once`);
  ok(counter.most >= 8, `only ${counter.most}: the streams did not run side by side`);
});
