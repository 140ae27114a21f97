/**
 * `reencrypt` routes end to end: edgemux terminates the client's TLS with its own certificate
 * and dials the backend over TLS again, checking the backend's certificate against the
 * backend's own CA and name, and presenting a client certificate when configured. Also `edge`
 * and `reencrypt` with `tcp:` backends, where the decrypted stream is relayed as bytes.
 */

import { createHash, randomBytes } from "node:crypto";
import { equal, match, ok } from "node:assert/strict";
import {
  serveTcp,
  startTcpBackend,
  startTlsHttpBackend,
  type TcpServer,
} from "./_helpers/backends.ts";
import { certPath, EDGE_CERTIFICATES, keyPath, readCert, readKey } from "./_helpers/certs.ts";
import { curlHttps } from "./_helpers/curl.ts";
import { startEdgemux } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { type BackgroundProcess, startProcess } from "./_helpers/process.ts";
import { closedPort } from "./_helpers/reliability_kit.ts";
import { requireTool } from "./_helpers/tools.ts";
import { connectTlsByName, ConnReader, writeFully } from "./_helpers/websocket.ts";

const CA = certPath("ca");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("reencrypt verifies the backend's certificate with the backend's own CA and name", async (t) => {
  await using internal = await startTlsHttpBackend("internal", "backend-internal");
  await using untrusted = await startTlsHttpBackend("untrusted", "untrusted");
  await using wrongName = await startTlsHttpBackend("wrong", "wrong-name");
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  internal:
    servers: ["127.0.0.1:${internal.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
  internal-by-ip:
    servers: ["127.0.0.1:${internal.port}"]
    tls: { ca: testdata/certs/ca.pem }
  untrusted:
    servers: ["127.0.0.1:${untrusted.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
  untrusted-own-ca:
    servers: ["127.0.0.1:${untrusted.port}"]
    tls: { ca: testdata/certs/other-ca.pem, server_name: backend.internal }
  wrong-name:
    servers: ["127.0.0.1:${wrongName.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
  wrong-name-right:
    servers: ["127.0.0.1:${wrongName.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: other.example.test }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: internal, sni: internal.example.test, reencrypt: internal }
      - { name: by-ip, sni: by-ip.example.test, reencrypt: internal-by-ip }
      - { name: untrusted, sni: untrusted.example.test, reencrypt: untrusted }
      - { name: untrusted-own-ca, sni: other-ca.example.test, reencrypt: untrusted-own-ca }
      - { name: wrong-name, sni: wrong.example.test, reencrypt: wrong-name }
      - { name: wrong-name-right, sni: right.example.test, reencrypt: wrong-name-right }
`);
  const port = edgemux.port("https");

  await t.step("the client sees edgemux's certificate, not the backend's", async () => {
    const r = await sClient({ port, servername: "internal.example.test", caFile: CA });
    equal(r.peerCN, "*.example.test");
    equal(r.verifyOk, true);
  });

  for (const v of ["1.1", "2"] as const) {
    await t.step(
      `HTTP/${v}: a backend signed by the configured CA answers through TLS`,
      async () => {
        const r = await curlHttps(port, "internal.example.test", `/secure-${v}?x=1`, v);
        equal(r.code, 0, r.stderr);
        equal(r.httpVersion, v);
        equal(r.status, 200);
        equal(r.body, `backend internal GET /secure-${v}?x=1\n`);
        equal(r.headers["x-backend"], "internal");
        const seen = internal.requests.find((x) => x.path === `/secure-${v}?x=1`)!;
        equal(seen.headers["x-forwarded-proto"], "https");
        equal(seen.headers["x-forwarded-for"], "127.0.0.1");
        equal(seen.headers["host"], `internal.example.test:${port}`);
        const rec = await edgemux.waitForRequest((x) => x.path === `/secure-${v}?x=1`);
        equal(rec.http, v === "2" ? "h2" : "h1");
        equal(rec.backend, "internal");
        equal(rec.end, "ok");
      },
    );
  }

  await t.step(
    "without server_name the server's address is verified (IP 127.0.0.1 SAN)",
    async () => {
      const r = await curlHttps(port, "by-ip.example.test", "/by-ip");
      equal(r.status, 200);
      equal(r.body, "backend internal GET /by-ip\n");
    },
  );

  for (const v of ["1.1", "2"] as const) {
    await t.step(
      `HTTP/${v}: a backend certificate from another CA gives 502 and upstream-tls`,
      async () => {
        const r = await curlHttps(port, "untrusted.example.test", `/untrusted-${v}`, v);
        equal(r.status, 502);
        equal(r.body, "Bad Gateway\n");
        equal(untrusted.requests.length, 0);
        const rec = await edgemux.waitForRequest((x) => x.path === `/untrusted-${v}`);
        equal(rec.end, "upstream-tls");
        match(rec.detail ?? "", /certificate|UnknownIssuer|issuer/i);
        ok(!r.body.includes("issuer"), "the client was told the internal reason");
      },
    );
  }

  await t.step("near miss: the same backend trusted through its own CA answers", async () => {
    const r = await curlHttps(port, "other-ca.example.test", "/own-ca");
    equal(r.status, 200);
    equal(r.body, "backend untrusted GET /own-ca\n");
  });

  await t.step("a certificate for another name gives 502", async () => {
    const r = await curlHttps(port, "wrong.example.test", "/wrong");
    equal(r.status, 502);
    equal(wrongName.requests.length, 0);
    const rec = await edgemux.waitForRequest((x) => x.path === "/wrong");
    equal(rec.end, "upstream-tls");
    match(rec.detail ?? "", /name|NotValidForName/i);
  });

  await t.step(
    "near miss: the same certificate with its own name as server_name answers",
    async () => {
      const r = await curlHttps(port, "right.example.test", "/right");
      equal(r.status, 200);
      equal(r.body, "backend wrong GET /right\n");
    },
  );
});

/** `openssl s_server -www` requiring a client certificate signed by the test CA. */
async function startMutualTlsServer(): Promise<{ process: BackgroundProcess; port: number }> {
  const openssl = requireTool("openssl", "openssl");
  const process = startProcess(openssl, [
    "s_server",
    "-accept",
    "127.0.0.1:0",
    "-cert",
    certPath("backend-internal"),
    "-key",
    keyPath("backend-internal"),
    "-CAfile",
    CA,
    "-Verify",
    "1",
    "-www",
  ]);
  try {
    const line = await process.waitForOutput(/ACCEPT 127\.0\.0\.1:\d+/, 10_000);
    return { process, port: Number(line.split(":").at(-1)) };
  } catch (e) {
    await process.stop();
    throw e;
  }
}

Deno.test("reencrypt presents a client certificate to a backend that requires one", async (t) => {
  const server = await startMutualTlsServer();
  await using _server = server.process;
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  with-cert:
    servers: ["127.0.0.1:${server.port}"]
    tls:
      ca: testdata/certs/ca.pem
      server_name: backend.internal
      cert: testdata/certs/client.pem
      key: testdata/certs/client.key
  without-cert:
    servers: ["127.0.0.1:${server.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: with-cert, sni: mtls.example.test, reencrypt: with-cert }
      - { name: without-cert, sni: nocert.example.test, reencrypt: without-cert }
`);
  const port = edgemux.port("https");

  await t.step(
    "with cert and key the backend answers 200 and shows the client certificate",
    async () => {
      const r = await curlHttps(port, "mtls.example.test", "/");
      equal(r.code, 0, r.stderr);
      equal(r.status, 200);
      match(r.body, /CN ?= ?edgemux-client/);
      match(r.body, /BEGIN CERTIFICATE/);
    },
  );

  await t.step(
    "without them the backend refuses the handshake and the client gets 502",
    async () => {
      const r = await curlHttps(port, "nocert.example.test", "/?nocert");
      const rec = await edgemux.waitForRequest((x) => x.path === "/?nocert");
      equal(r.status, 502, `request record: ${JSON.stringify(rec)}`);
      equal(r.body, "Bad Gateway\n");
      equal(rec.backend, "without-cert");
      ok(rec.end.startsWith("upstream-"), `end is ${rec.end}`);
      // Near miss: the route with the certificate still works after the refusal.
      equal((await curlHttps(port, "mtls.example.test", "/?again")).status, 200);
    },
  );
});

/** A TLS echo server (the certificate backend-internal), for `reencrypt: { tcp: … }`. */
function startTlsEchoServer(): TcpServer {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCert("backend-internal"),
    key: readKey("backend-internal"),
  });
  return serveTcp(listener, async (conn) => {
    const buf = new Uint8Array(16 * 1024);
    for (let n; (n = await conn.read(buf)) !== null;) await writeFully(conn, buf.subarray(0, n));
    await conn.closeWrite();
  });
}

Deno.test("edge and reencrypt relay a decrypted TCP stream to tcp: backends", async (t) => {
  await using digest = await startTcpBackend("digest", "digest");
  await using echo = startTlsEchoServer();
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  digest: { servers: ["127.0.0.1:${digest.port}"] }
  dead: { servers: ["127.0.0.1:${closedPort()}"] }
  tls-echo:
    servers: ["127.0.0.1:${echo.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: tcp-edge, sni: tcp.example.test, edge: { tcp: digest } }
      - { name: tcp-reencrypt, sni: tcps.example.test, reencrypt: { tcp: tls-echo } }
      - { name: tcp-dead, sni: dead.example.test, edge: { tcp: dead } }
`);
  const port = edgemux.port("https");
  const caCerts = [readCert("ca")];

  await t.step(
    "edge tcp: every byte reaches a plain backend and its reply comes back",
    async () => {
      const data = new Uint8Array(randomBytes(1 << 20));
      const expected = createHash("sha256").update(data).digest("hex");
      const { conn, alpn } = await connectTlsByName({
        port,
        serverName: "tcp.example.test",
        caCerts,
        alpn: [],
      });
      try {
        equal(alpn, null);
        await writeFully(conn, data);
        // close_notify and FIN: the digest backend answers once it sees the end.
        await conn.closeWrite();
        const reply = decoder.decode(await new ConnReader(conn).readToEnd(10_000));
        equal(reply, `digest ${data.length} ${expected}\n`);
      } finally {
        conn.close();
      }
      const rec = await edgemux.waitForRecord((r) => r.sni === "tcp.example.test");
      equal(rec.route, "tcp-edge");
      equal(rec.backend, "digest");
      equal(digest.connections, 1);
    },
  );

  await t.step("reencrypt tcp: the stream is encrypted again to a TLS echo server", async () => {
    const { conn } = await connectTlsByName({
      port,
      serverName: "tcps.example.test",
      caCerts,
      alpn: [],
    });
    try {
      const reader = new ConnReader(conn);
      for (const word of ["first", "second", "third"]) {
        await writeFully(conn, encoder.encode(word));
        equal(decoder.decode(await reader.readExactly(word.length, 3000)), word);
      }
      await conn.closeWrite();
      equal((await reader.readToEnd(5000)).length, 0, "bytes after the half-close");
    } finally {
      conn.close();
    }
    const rec = await edgemux.waitForRecord((r) => r.sni === "tcps.example.test");
    equal(rec.route, "tcp-reencrypt");
    equal(rec.backend, "tls-echo");
    equal(echo.connections, 1);
  });

  await t.step(
    "edge tcp: a backend on a closed port ends the connection as upstream-refused",
    async () => {
      const { conn } = await connectTlsByName({
        port,
        serverName: "dead.example.test",
        caCerts,
        alpn: [],
      });
      try {
        equal((await new ConnReader(conn).readToEnd(5000)).length, 0, "bytes from a dead backend");
      } finally {
        conn.close();
      }
      const rec = await edgemux.waitForRecord((r) => r.sni === "dead.example.test");
      equal(rec.route, "tcp-dead");
      equal(rec.backend, "dead");
      equal(rec.end, "upstream-refused", JSON.stringify(rec));
    },
  );
});
