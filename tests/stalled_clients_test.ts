/**
 * Clients that stop before their route is established are closed at the timeout of the phase
 * they stopped in, and while they wait, everyone else is served on every listener:
 *
 * - after a whole ClientHello (the TLS handshake): `sniff.timeout` again, on `edge`,
 *   `reencrypt` and TLS-terminated `tcp:` routes;
 * - in the middle of a ClientHello: `sniff.timeout`;
 * - after the TLS handshake, with no request (HTTP/1.1 and HTTP/2) or half a request head:
 *   `http.request_head_timeout` (the keep-alive timeout is much longer here, so a connection
 *   closed at the head timeout shows that the first request does not get a keep-alive wait).
 *
 * "Closed" is seen from the client: its socket reads end of stream.
 */

import { equal, ok } from "node:assert/strict";
import { startHttpBackend, startTcpBackend, startTlsHttpBackend } from "./_helpers/backends.ts";
import { certPath, EDGE_CERTIFICATES, readCert } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { connectFrom } from "./_helpers/source_address.ts";
import { connectTlsByName, writeFully } from "./_helpers/websocket.ts";

/** `sniff.timeout` of the TLS listeners, which is also the TLS handshake timeout. */
const SNIFF_TIMEOUT = 1000;
const HEAD_TIMEOUT = 1000;
/** Much longer than the head timeout: a close at the head timeout cannot be the keep-alive one. */
const KEEPALIVE_TIMEOUT = 30_000;
/**
 * How late a close may come: deadlines are checked on a 100 ms tick, and 200 connections on a
 * shared 2-core machine add their own delay. Still far below any other timeout in play.
 */
const MARGIN = 2500;
/** edgemux's deadline tick may fire up to one tick before the configured time. */
const EARLY_BY = 110;
const STALLERS = 200;
/** Where the well-behaved clients come from: a second loopback address. */
const OTHER_CLIENT = "127.0.0.2";

const HELLO_DIR = new URL("../testdata/hellos/", import.meta.url);
const hello = (file: string) => Deno.readFileSync(new URL(file, HELLO_DIR));
/**
 * Captured hellos of real clients (all name *.example.test; see testdata/hellos/README.md), each
 * answered by edgemux's server flight, after which the client would have to go on.
 */
const HELLOS = [
  "curl.bin",
  "chromium.bin",
  "deno_connect_tls.bin",
  "openssl_s_client_alpn.bin",
].map(hello);
/**
 * A hello in three TLS records (openssl -max_send_frag 512). Its only key share is ffdhe8192,
 * which edgemux's TLS stack refuses at once, so it can only stall mid-way, in the sniffer.
 */
const SPLIT_HELLO = hello("openssl_s_client_split.bin");

function note(what: string, value: string | number): void {
  console.log(`    ${what}: ${value}`);
}

/** Reads and drops whatever arrives until end of stream; resolves with when it ended. */
async function endOfStream(conn: Deno.Conn, timeoutMs: number): Promise<number | null> {
  const buf = new Uint8Array(16 * 1024);
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }, timeoutMs);
  let closedByPeer = false;
  try {
    for (;;) {
      if (await conn.read(buf) === null) {
        closedByPeer = true;
        break;
      }
    }
  } catch (e) {
    // A reset is a close by the peer; our own close (the timer) is not.
    closedByPeer = e instanceof Deno.errors.ConnectionReset;
  } finally {
    clearTimeout(timer);
  }
  return closedByPeer ? performance.now() : null;
}

async function withSetup(
  fn: (s: { edgemux: TestProxy; sshBackendPort: number }) => Promise<void>,
): Promise<void> {
  await using app = await startHttpBackend("app");
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using ssh = await startTcpBackend("ssh", "echo");
  await using digest = await startTcpBackend("digest", "digest");
  // The stallers come from 127.0.0.1 and are all admitted (per-client cap above their number);
  // the total cap leaves room for little more, so connections a stalled client kept would
  // quickly lock everyone else out.
  await using edgemux = await startEdgemux(`
version: 1
http:
  request_head_timeout: ${HEAD_TIMEOUT}ms
  keepalive_timeout: ${KEEPALIVE_TIMEOUT}ms
limits:
  max_connections: ${STALLERS + 60}
  per_client: { max_connections: ${STALLERS + 20} }
${EDGE_CERTIFICATES}
backends:
  app: { servers: ["127.0.0.1:${app.port}"] }
  vault: { servers: ["127.0.0.1:${vault.port}"] }
  ssh: { servers: ["127.0.0.1:${ssh.port}"] }
  digest: { servers: ["127.0.0.1:${digest.port}"] }
  internal:
    servers: ["127.0.0.1:${app.port}"]
    tls: { ca: testdata/certs/ca.pem, server_name: backend.internal }
listeners:
  ssh:
    bind: "127.0.0.1:0"
    routes:
      - forward: ssh
  https:
    bind: "127.0.0.1:0"
    sniff: { timeout: ${SNIFF_TIMEOUT}ms }
    routes:
      - { name: vault, sni: vault.example.test, passthrough: vault }
      - { name: app, sni: "*.example.test", edge: app }
  reencrypt:
    bind: "127.0.0.1:0"
    sniff: { timeout: ${SNIFF_TIMEOUT}ms }
    routes:
      - { name: reencrypt, sni: "*.example.test", reencrypt: internal }
  edge-tcp:
    bind: "127.0.0.1:0"
    sniff: { timeout: ${SNIFF_TIMEOUT}ms }
    routes:
      - { name: edge-tcp, sni: "*.example.test", edge: { tcp: digest } }
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { https_port: 443 }
`);
  await fn({ edgemux, sshBackendPort: ssh.port });
}

/** One request on each listener from {@link OTHER_CLIENT}; throws naming what failed. */
async function serveEveryListener(edgemux: TestProxy): Promise<void> {
  const https = edgemux.port("https");
  const common = ["--interface", OTHER_CLIENT, "--cacert", certPath("ca"), "--max-time", "5"];
  const [edge, passthrough, redirect, ssh] = await Promise.all([
    curl([
      ...common,
      "--resolve",
      `app.example.test:${https}:127.0.0.1`,
      `https://app.example.test:${https}/fresh`,
    ]),
    curl([
      ...common,
      "--resolve",
      `vault.example.test:${https}:127.0.0.1`,
      `https://vault.example.test:${https}/fresh`,
    ]),
    curl([
      ...common,
      `http://app.example.test:${edgemux.port("http")}/fresh`,
      "--resolve",
      `app.example.test:${edgemux.port("http")}:127.0.0.1`,
    ]),
    (async () => {
      const conn = await connectFrom(OTHER_CLIENT, edgemux.port("ssh"));
      try {
        await conn.write("SSH-2.0-fresh\r\n");
        return await conn.waitForText("SSH-2.0-fresh\r\n", 5000);
      } finally {
        conn.destroy();
      }
    })(),
  ]);
  equal(edge.status, 200, `edge: ${edge.errorMessage}`);
  equal(edge.body, "backend app GET /fresh\n");
  equal(passthrough.status, 200, `passthrough: ${passthrough.errorMessage}`);
  equal(passthrough.headers["x-backend"], "vault");
  equal(redirect.status, 308, `redirect: ${redirect.errorMessage}`);
  ok(ssh, "ssh forward: the echo did not come back");
}

Deno.test({
  name: "200 clients stalled after a full ClientHello are closed at the handshake timeout; " +
    "every listener serves others meanwhile",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withSetup(async ({ edgemux }) => {
      const port = edgemux.port("https");
      // Open every staller first, then start their clocks once each hello is written.
      const conns: Deno.TcpConn[] = [];
      for (let i = 0; i < STALLERS; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      const sentAt: number[] = [];
      await Promise.all(conns.map(async (c, i) => {
        await writeFully(c, HELLOS[i % HELLOS.length]);
        sentAt[i] = performance.now();
      }));
      const closing = conns.map((c) => endOfStream(c, SNIFF_TIMEOUT * 2 + MARGIN + 5000));

      // Well-behaved clients on every listener, until every staller is closed.
      let allClosed = false;
      const closedAll = Promise.all(closing).then((r) => {
        allClosed = true;
        return r;
      });
      let rounds = 0;
      while (!allClosed || rounds === 0) {
        await serveEveryListener(edgemux);
        rounds++;
      }
      const closedAt = await closedAll;

      const late: number[] = [];
      const open: number[] = [];
      let slowest = 0;
      let fastest = Infinity;
      closedAt.forEach((at, i) => {
        if (at === null) return open.push(i);
        const after = at - sentAt[i];
        slowest = Math.max(slowest, after);
        fastest = Math.min(fastest, after);
        if (after > SNIFF_TIMEOUT + MARGIN || after < SNIFF_TIMEOUT - EARLY_BY) late.push(i);
      });
      note("rounds of fresh clients on every listener while stalled", rounds);
      note("closed after (fastest..slowest ms)", `${Math.round(fastest)}..${Math.round(slowest)}`);
      equal(open.length, 0, `${open.length} stalled clients were never closed`);
      equal(late.length, 0, `${late.length} closed outside the handshake timeout + margin`);

      const stalled = edgemux.records.filter((r) => r.end === "handshake-timeout");
      equal(stalled.length, STALLERS);
      ok(stalled.every((r) => r.route === "app" && r.ms < SNIFF_TIMEOUT * 2 + MARGIN));
      // Once they are gone, nothing of theirs is left open (the fresh clients' own connections
      // may still be finishing their close when the last answer arrives).
      await serveEveryListener(edgemux);
      const until = Date.now() + 3000;
      while (edgemux.proxy.activeConnections > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      equal(edgemux.proxy.activeConnections, 0);
    });
  },
});

Deno.test({
  name: "every phase before a route is established closes the client at its own timeout",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withSetup(async ({ edgemux }) => {
      const ca = [readCert("ca")];

      /** Asserts that `conn` is closed by edgemux within [timeout, timeout + margin] of `from`. */
      const closesAt = async (
        what: string,
        conn: Deno.Conn,
        from: number,
        timeout: number,
        end: string | null,
        listener = "https",
      ) => {
        const at = await endOfStream(conn, timeout + MARGIN + 5000);
        ok(at !== null, `${what}: never closed`);
        const after = at - from;
        note(what, `closed after ${Math.round(after)} ms`);
        ok(after >= timeout - EARLY_BY, `${what}: closed too early (${after} ms)`);
        ok(after <= timeout + MARGIN, `${what}: closed late (${after} ms)`);
        if (end !== null) {
          await edgemux.waitForRecord((r) => r.listener === listener && r.end === end, 5000);
        }
      };

      for (const listener of ["reencrypt", "edge-tcp"]) {
        await t.step(`${listener}: a full ClientHello, then nothing`, async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: edgemux.port(listener) });
          await writeFully(conn, HELLOS[0]);
          await closesAt(
            `${listener} after hello`,
            conn,
            performance.now(),
            SNIFF_TIMEOUT,
            "handshake-timeout",
            listener,
          );
        });
      }

      await t.step("half a ClientHello, then nothing: sniff.timeout", async () => {
        for (const hello of [HELLOS[1], SPLIT_HELLO]) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: edgemux.port("https") });
          const started = performance.now();
          await writeFully(conn, hello.subarray(0, Math.floor(hello.length / 2)));
          await closesAt("mid-hello", conn, started, SNIFF_TIMEOUT, "sniff-timeout");
        }
      });

      for (const alpn of ["http/1.1", "h2"]) {
        await t.step(`${alpn}: a finished handshake, then no request`, async () => {
          const { conn, alpn: got } = await connectTlsByName({
            port: edgemux.port("https"),
            serverName: "app.example.test",
            caCerts: ca,
            alpn: [alpn],
          });
          equal(got, alpn);
          // From the client's side the internal server ended the connection.
          await closesAt(`${alpn} no request`, conn, performance.now(), HEAD_TIMEOUT, null);
        });
      }

      await t.step("http/1.1: half a request head, then nothing: 408 and a close", async () => {
        const { conn } = await connectTlsByName({
          port: edgemux.port("https"),
          serverName: "app.example.test",
          caCerts: ca,
        });
        const started = performance.now();
        await writeFully(conn, new TextEncoder().encode("GET /half HTTP/1.1\r\nHost: app.exa"));
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        ok(n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("HTTP/1.1 408"));
        await closesAt("half a head", conn, started, HEAD_TIMEOUT, null);
        const request = await edgemux.waitForRequest((r) => r.status === 408, 5000);
        equal(request.end, "request-timeout");
      });
    });
  },
});
