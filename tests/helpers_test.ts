// Self-tests of the end-to-end toolkit in tests/_helpers/, against the real programs directly
// (no edgemux in between), so a failing end-to-end test can trust its instruments.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  startHttpBackend,
  startProxyProtocolBackend,
  startTcpBackend,
  startTlsHttpBackend,
} from "./_helpers/backends.ts";
import {
  type CertName,
  certPath,
  CERTS_DIR,
  keyPath,
  readCert,
  readKey,
  spkiPinBase64,
} from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { rawH2Request } from "./_helpers/h2_raw.ts";
import {
  parseMirrorAnswer,
  startNginxProxyProtocolBackend,
  startNginxRouteMirror,
} from "./_helpers/nginx.ts";
import { sClient } from "./_helpers/openssl.ts";
import { parseProxyHeader } from "./_helpers/proxy_protocol.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { startSshd } from "./_helpers/sshd.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const encoder = new TextEncoder();

/** Live (not zombie) PIDs whose process group id is `pgid`, read from /proc. */
function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // Fields after the parenthesised command name: state ppid pgrp ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // An orphan's zombie lingers until PID 1 reaps it; it is not running.
      if (Number(pgrp) === pgid && state !== "Z") members.push(Number(entry.name));
    } catch {
      // The process ended while we looked.
    }
  }
  return members;
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  for (let n; (n = await conn.read(buf)) !== null;) {
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  return text + decoder.decode();
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

/** Sends `data`, half-closes, and returns everything the server sent back. */
async function exchange(port: number, data: Uint8Array): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, data);
  await conn.closeWrite();
  return await readAll(conn);
}

function bytes(...parts: (number[] | string)[]): Uint8Array {
  return new Uint8Array(
    parts.flatMap((part) => typeof part === "string" ? [...encoder.encode(part)] : part),
  );
}

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

Deno.test("requireTool() finds installed tools and names the Debian package of missing ones", () => {
  assert.equal(requireTool("openssl", "openssl"), "/usr/bin/openssl");
  assert.equal(requireTool("sshd", "openssh-server"), "/usr/sbin/sshd");
  assert.throws(
    () => requireTool("edgemux-no-such-tool", "edgemux-imaginary"),
    {
      message: 'required tool "edgemux-no-such-tool" is missing: install the Debian package ' +
        "edgemux-imaginary (apt-get install -y edgemux-imaginary)",
    },
  );
});

Deno.test("run() returns exit code, stdout and stderr, and feeds stdin", async () => {
  const result = await run("sh", ["-c", "cat; echo err >&2; exit 3"], { stdin: "in\n" });
  assert.deepEqual(result, { code: 3, signal: null, stdout: "in\n", stderr: "err\n" });
  const env = await run("sh", ["-c", "echo $EDGEMUX_X; pwd"], {
    env: { EDGEMUX_X: "x" },
    cwd: "/tmp",
  });
  assert.equal(env.stdout, "x\n/tmp\n");
});

Deno.test("run() kills the whole command at its timeout and says what it ran", async () => {
  const started = Date.now();
  await assert.rejects(
    run("sh", ["-c", "echo partial >&2; sleep 30 & sleep 30"], { timeoutMs: 300 }),
    (error: Error) => {
      assert.match(error.message, /timed out after 300 ms/);
      assert.match(error.message, /sh -c 'echo partial >&2; sleep 30 & sleep 30'/);
      assert.match(error.message, /partial/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 3000);
});

Deno.test("startProcess() waits for output, and stop() escalates to SIGKILL", async (t) => {
  await t.step("a process that obeys SIGTERM", async () => {
    await using proc = startProcess("sh", ["-c", "echo ready >&2; sleep 0.1; echo two; sleep 30"]);
    assert.equal(await proc.waitForOutput(/rea../, 5000), "ready");
    assert.equal(await proc.waitForOutput("two", 5000), "two");
    assert.equal(proc.output(), "ready\ntwo\n");
    const status = await proc.stop();
    assert.equal(status.signal, "SIGTERM");
    assert.deepEqual(processGroupMembers(proc.pid), []);
  });
  await t.step("a process that ignores SIGTERM", async () => {
    const proc = startProcess("sh", ["-c", "trap '' TERM; echo ready; sleep 30"]);
    await proc.waitForOutput("ready", 5000);
    const started = Date.now();
    assert.equal((await proc.stop()).signal, "SIGKILL");
    assert.ok(Date.now() - started >= 2900);
    assert.deepEqual(processGroupMembers(proc.pid), []);
  });
  await t.step("waitForOutput() rejects when the process exits first", async () => {
    await using proc = startProcess("sh", ["-c", "echo bye"]);
    await assert.rejects(proc.waitForOutput("never", 5000), /exited .* before its output/);
  });
});

Deno.test("makeTempDir() removes the directory and its contents on dispose", async () => {
  let path: string;
  {
    await using dir = await makeTempDir("edgemux-helpers-");
    path = dir.path;
    await Deno.mkdir(`${path}/a/b`, { recursive: true });
    await Deno.writeTextFile(`${path}/a/b/c.txt`, "c");
  }
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
});

Deno.test("certs: every certificate and key exists, and spkiPinBase64() agrees with openssl", async () => {
  const names: CertName[] = [
    "ca",
    "other-ca",
    "vault",
    "git",
    "apps-wildcard",
    "default-backend",
    "prometheus",
    "edge-wildcard",
    "backend-internal",
    "client",
    "wrong-name",
    "untrusted",
  ];
  assert.ok(CERTS_DIR.startsWith("/") && CERTS_DIR.endsWith("/testdata/certs"));
  for (const name of names) {
    assert.match(readCert(name), /^-----BEGIN CERTIFICATE-----\n/);
    assert.match(readKey(name), /^-----BEGIN PRIVATE KEY-----\n/);
  }
  const pipeline = `openssl x509 -in '${certPath("edge-wildcard")}' -pubkey -noout |
    openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`;
  const { stdout } = await run("sh", ["-c", pipeline]);
  assert.equal(spkiPinBase64("edge-wildcard"), stdout.trim());
  assert.notEqual(spkiPinBase64("vault"), spkiPinBase64("git"));
  assert.equal(keyPath("vault"), `${CERTS_DIR}/vault.key`);
});

Deno.test("startTcpBackend() echoes bytes and closes after the client's FIN", async () => {
  await using backend = await startTcpBackend("echo1", "echo");
  assert.equal(await exchange(backend.port, encoder.encode("hello\n")), "hello\n");
  assert.equal(backend.connections, 1);
  assert.equal(backend.remoteAddrs[0].hostname, "127.0.0.1");
});

Deno.test("startTcpBackend() digest mode counts and hashes everything sent before the FIN", async () => {
  await using backend = await startTcpBackend("digest1", "digest");
  const data = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 0xff);
  const sha = createHash("sha256").update(data).digest("hex");
  assert.equal(await exchange(backend.port, data), `digest1 ${data.length} ${sha}\n`);
});

Deno.test("sClient() reads the certificate, verification, ALPN and alerts of a TLS server", async (t) => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using untrusted = await startTlsHttpBackend("untrusted", "untrusted");

  await t.step("a trusted certificate for the requested name", async () => {
    const seen = await sClient({
      port: vault.port,
      servername: "vault.example.test",
      alpn: ["h2", "http/1.1"],
      caFile: certPath("ca"),
    });
    assert.equal(seen.connected, true, seen.raw);
    assert.equal(seen.handshakeOk, true, seen.raw);
    assert.equal(seen.peerCN, "vault.example.test");
    assert.equal(seen.issuerCN, "edgemux test CA");
    assert.equal(seen.verifyOk, true, seen.raw);
    assert.equal(seen.alpn, "h2");
    assert.equal(seen.tlsVersion, "TLSv1.3");
    assert.equal(seen.alert, null);
  });
  await t.step(
    "the wrong name or the wrong CA fail verification but still show the CN",
    async () => {
      const wrongName = await sClient({
        port: vault.port,
        servername: "git.example.test",
        caFile: certPath("ca"),
      });
      assert.equal(wrongName.peerCN, "vault.example.test");
      assert.equal(wrongName.verifyOk, false);
      assert.equal(wrongName.verifyResult, "62 (hostname mismatch)");
      const wrongCa = await sClient({
        port: untrusted.port,
        servername: null,
        alpn: ["http/1.1"],
        caFile: certPath("ca"),
      });
      assert.equal(wrongCa.peerCN, "backend.internal");
      assert.equal(wrongCa.issuerCN, "edgemux other CA");
      assert.equal(wrongCa.verifyOk, false);
      assert.equal(wrongCa.alpn, "http/1.1");
    },
  );
  await t.step("an ALPN mismatch is reported as the server's alert", async () => {
    const seen = await sClient({ port: vault.port, alpn: ["edgemux-none"] });
    assert.equal(seen.handshakeOk, false);
    assert.equal(seen.peerCN, null);
    assert.equal(seen.alert, "no application protocol");
  });
  await t.step("a refused connection", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const seen = await sClient({ port });
    assert.equal(seen.connected, false);
    assert.equal(seen.handshakeOk, false);
  });
});

Deno.test("curl() fetches from TLS and plain backends, which record the requests", async (t) => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using plain = await startHttpBackend("prometheus");
  const resolve = `vault.example.test:${vault.port}:127.0.0.1`;
  const url = `https://vault.example.test:${vault.port}/v1/sys/health?standby=1`;

  await t.step("https with the test CA over HTTP/2 and HTTP/1.1", async () => {
    const h2 = await curl(["--resolve", resolve, "--cacert", certPath("ca"), "--http2", url]);
    assert.equal(h2.code, 0, h2.stderr);
    assert.equal(h2.status, 200);
    assert.equal(h2.httpVersion, "2");
    assert.equal(h2.headers["x-backend"], "vault");
    assert.equal(h2.body, "backend vault GET /v1/sys/health?standby=1\n");
    const h1 = await curl([
      "--resolve",
      resolve,
      "--cacert",
      certPath("ca"),
      "--http1.1",
      "-X",
      "POST",
      "--data-binary",
      "payload",
      url,
    ]);
    assert.equal(h1.httpVersion, "1.1");
    assert.equal(h1.body, "backend vault POST /v1/sys/health?standby=1\n");
    assert.equal(vault.requests.length, 2);
    assert.equal(vault.requests[1].body, "payload");
    assert.equal(vault.requests[1].headers.host, `vault.example.test:${vault.port}`);
  });
  await t.step("an untrusted certificate is curl exit 60, not an exception", async () => {
    const res = await curl(["--resolve", resolve, url]);
    assert.equal(res.code, 60);
    assert.equal(res.status, 0);
    assert.equal(res.httpVersion, null);
    assert.match(res.errorMessage, /certificate/);
  });
  await t.step("plain HTTP records request headers", async () => {
    const res = await curl(["-H", "X-Test: 1", `http://127.0.0.1:${plain.port}/metrics`]);
    assert.equal(res.status, 200);
    assert.equal(res.body, "backend prometheus GET /metrics\n");
    assert.equal(plain.requests[0].headers["x-test"], "1");
    assert.equal(plain.requests[0].remoteAddr.hostname, "127.0.0.1");
  });
});

Deno.test("startProxyProtocolBackend() decodes hand-written v1 and v2 headers", async (t) => {
  await using backend = await startProxyProtocolBackend("pp", { firstByteTimeoutMs: 300 });

  await t.step("v1 TCP4", async () => {
    const reply = await exchange(
      backend.port,
      bytes("PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\nhello"),
    );
    assert.equal(reply, "pp proxy=v1 src=192.0.2.10:56324 dst=198.51.100.20:443\n");
    assert.equal(new TextDecoder().decode(backend.records.at(-1)?.payload), "hello");
  });
  await t.step("v2 PROXY TCP4", async () => {
    const header = bytes(
      V2_SIGNATURE,
      [0x21, 0x11, 0x00, 12],
      [203, 0, 113, 7, 127, 0, 0, 1],
      [0xa0, 0x28, 0x01, 0xbb], // ports 41000 and 443
      "data",
    );
    assert.equal(
      await exchange(backend.port, header),
      "pp proxy=v2 src=203.0.113.7:41000 dst=127.0.0.1:443\n",
    );
  });
  await t.step("v2 PROXY TCP6 with a TLV", async () => {
    const header = bytes(
      V2_SIGNATURE,
      [0x21, 0x21, 0x00, 36 + 6],
      [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      [0x30, 0x39, 0x01, 0xbb], // ports 12345 and 443
      [0x01, 0x00, 0x03],
      "h2\0",
    );
    assert.equal(
      await exchange(backend.port, header),
      "pp proxy=v2 src=[2001:db8::1]:12345 dst=[::1]:443\n",
    );
    const record = backend.records.at(-1);
    assert.equal(record?.header?.tlvs[0].type, 0x01);
  });
  await t.step("no header at all, and a broken one", async () => {
    const none = await exchange(backend.port, bytes("GET / HTTP/1.0\r\n\r\n"));
    assert.match(none, /^pp proxy=none src=127\.0\.0\.1:\d+ dst=127\.0\.0\.1:\d+\n$/);
    const silent = await exchange(backend.port, new Uint8Array(0));
    assert.match(silent, /^pp proxy=none /);
    const broken = await exchange(backend.port, bytes(V2_SIGNATURE, [0x31, 0x11, 0, 12]));
    assert.equal(broken, "pp proxy=invalid error=v2 version nibble is 3, not 2\n");
  });
});

Deno.test("parseProxyHeader() waits for a split header and rejects bad v1 fields", () => {
  const full = bytes("PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
  assert.deepEqual(parseProxyHeader(full.subarray(0, 3)), { kind: "incomplete" });
  assert.deepEqual(parseProxyHeader(full.subarray(0, 20)), { kind: "incomplete" });
  const parsed = parseProxyHeader(full);
  assert.equal(parsed.kind === "header" && parsed.header.length, full.length);
  assert.deepEqual(parseProxyHeader(bytes("POST / HTTP/1.1\r\n")), { kind: "none" });
  assert.equal(parseProxyHeader(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n")).kind, "malformed");
  assert.equal(parseProxyHeader(bytes("PROXY TCP4 ::1 5.6.7.8 1 2\r\n")).kind, "malformed");
});

Deno.test("startNginxProxyProtocolBackend() reports the address from a hand-written v2 header", async () => {
  await using nginx = await startNginxProxyProtocolBackend();
  const header = bytes(
    V2_SIGNATURE,
    [0x21, 0x11, 0x00, 12],
    [198, 51, 100, 99, 127, 0, 0, 1],
    [0xd4, 0x31, 0x01, 0xbb], // ports 54321 and 443
  );
  const request = bytes("GET / HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n");
  const response = await exchange(nginx.port, bytes([...header], [...request]));
  assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(response.endsWith("\r\n\r\n198.51.100.99:54321\n"), response);
});

Deno.test("startNginxRouteMirror() gives each route a location with edgemux's path rules", async () => {
  await using nginx = await startNginxRouteMirror([
    { name: "admin", pathPrefix: "/admin" },
    { name: "files", pathPrefix: "/files/" },
    { name: "exact", path: "/exact" },
    { name: "other" },
  ]);
  const cases: [target: string, location: string][] = [
    ["/admin", "admin"],
    ["/admin/x?q", "admin"],
    ["/administrator", "other"], // a prefix stops at a segment boundary
    ["/files/a", "files"],
    ["/files", "other"], // a prefix ending in "/" takes only what is below it
    ["/exact", "exact"],
    ["/exact/", "other"],
  ];
  for (const [target, location] of cases) {
    const request = `GET ${target} HTTP/1.1\r\nHost: m.test\r\nX-Edgemux-Route: r1\r\n` +
      "Connection: close\r\n\r\n";
    const response = await exchange(nginx.port, bytes(request));
    const answer = parseMirrorAnswer(response.slice(response.indexOf("\r\n\r\n") + 4));
    assert.deepEqual(answer, { location, route: "r1", requestUri: target }, target);
  }
  assert.equal(parseMirrorAnswer("Bad Request\n"), null);
});

Deno.test("rawH2Request() sends :path byte for byte and reads status, body and resets", async () => {
  const seen: string[] = [];
  await using server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCert("edge-wildcard"),
    key: readKey("edge-wildcard"),
    onListen() {},
  }, (req) => {
    seen.push(req.url);
    return new Response("hello", { status: req.url.endsWith("/teapot") ? 418 : 200 });
  });
  const target = {
    port: server.addr.port,
    serverName: "h2.example.test",
    caCerts: [readCert("ca")],
    authority: "h2.example.test",
  };
  assert.deepEqual(await rawH2Request({ ...target, path: "//a/../%2f" }), {
    kind: "response",
    status: 200,
    body: "hello",
  });
  assert.equal(seen[0], "https://h2.example.test//a/../%2f");
  // 418 is no static-table status, so it arrives as a (Huffman-coded) literal.
  const teapot = await rawH2Request({ ...target, path: "/teapot" });
  assert.deepEqual(teapot, { kind: "response", status: 418, body: "hello" });
  // A space is malformed in :path (RFC 9113 §8.3.1); the server refuses the stream.
  const bad = await rawH2Request({ ...target, path: "/a b" });
  assert.ok(bad.kind === "reset" || bad.kind === "goaway", JSON.stringify(bad));
});

Deno.test("startSshd() accepts the generated key and verifies the host key by alias", async () => {
  await using sshd = await startSshd();
  const ssh = requireTool("ssh", "openssh-client");
  const ok = await run(ssh, [...sshd.sshArgs(sshd.port), "echo hello"]);
  assert.equal(ok.code, 0, `${ok.stderr}\n${sshd.output()}`);
  assert.equal(ok.stdout, "hello\n");
  const wrongAlias = await run(ssh, [...sshd.sshArgs(sshd.port, "not-the-alias"), "true"]);
  assert.notEqual(wrongAlias.code, 0);
  assert.match(wrongAlias.stderr, /Host key verification failed/);
});
