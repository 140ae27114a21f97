/**
 * `edge` routes end to end: edgemux terminates TLS with the certificate chosen by SNI and proxies
 * HTTP/1.1 and HTTP/2 from real clients (openssl s_client, curl) to plain HTTP backends. The
 * backends record what reached them, so each test checks both sides of the proxy.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { startHttpBackend } from "./_helpers/backends.ts";
import { certPath, readCert } from "./_helpers/certs.ts";
import { curl, type CurlResult } from "./_helpers/curl.ts";
import { sha256Hex, startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";
import {
  ConnReader,
  connectTlsByName,
  parseResponseHead,
  writeFully,
} from "./_helpers/websocket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CA = certPath("ca");

// ---------------------------------------------------------------------------------------------
// Backends written for this file
// ---------------------------------------------------------------------------------------------

/** The gzip body the special backend serves; tests compare it byte for byte. */
const GZIP_BODY: Uint8Array = await gzip(
  encoder.encode("edgemux gzip payload\n".repeat(2000) + "the end\n"),
);

async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const SSE_EVENTS = 6;
const SSE_INTERVAL_MS = 200;

/** A Deno.serve backend with a few special paths, recording when it wrote each SSE event. */
interface SpecialBackend extends AsyncDisposable {
  port: number;
  /** Per SSE stream (keyed by its `?id=`), the performance.now() at which each event was written. */
  sseSent: Map<string, number[]>;
  /** Request headers seen by /echo, in order. */
  echoHeaders: Record<string, string>[];
}

function startSpecialBackend(): SpecialBackend {
  const sseSent = new Map<string, number[]>();
  const echoHeaders: Record<string, string>[] = [];
  const abort = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen: () => {},
    onError: () => new Response("backend error\n", { status: 500 }),
    handler: (req) => {
      const url = new URL(req.url);
      switch (url.pathname) {
        case "/status/404":
          return new Response("the backend has no such page\n", {
            status: 404,
            headers: { "x-backend": "special" },
          });
        case "/gzip":
          return new Response(GZIP_BODY.slice(), {
            headers: { "content-encoding": "gzip", "content-type": "text/plain" },
          });
        case "/gzip-chunked": {
          // Three pieces and no length: the backend sends it chunked.
          const third = Math.ceil(GZIP_BODY.length / 3);
          const pieces = [0, 1, 2].map((i) => GZIP_BODY.slice(i * third, (i + 1) * third));
          return new Response(ReadableStream.from(pieces), {
            headers: { "content-encoding": "gzip", "content-type": "text/plain" },
          });
        }
        case "/echo": {
          const headers: Record<string, string> = {};
          for (const [k, v] of req.headers) headers[k] = v;
          echoHeaders.push(headers);
          return new Response(req.body, { headers: { "content-type": "application/octet-stream" } });
        }
        case "/sse": {
          const sent: number[] = [];
          sseSent.set(url.searchParams.get("id") ?? "", sent);
          let i = 0;
          const body = new ReadableStream<Uint8Array>({
            async pull(controller) {
              if (i > 0) await new Promise((r) => setTimeout(r, SSE_INTERVAL_MS));
              sent.push(performance.now());
              controller.enqueue(encoder.encode(`id: ${i}\ndata: event-${i}\n\n`));
              if (++i === SSE_EVENTS) controller.close();
            },
          }, { highWaterMark: 0 });
          return new Response(body, {
            headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
          });
        }
        default:
          return new Response("special backend\n");
      }
    },
  });
  const close = async () => {
    abort.abort();
    await server.finished;
  };
  return { port: server.addr.port, sseSent, echoHeaders, [Symbol.asyncDispose]: close };
}

/**
 * A raw HTTP/1.1 backend for what Deno.serve hides or normalises: it counts TCP connections,
 * keeps each request head exactly as received, and answers every request with the same fixed
 * response (so it can send hop-by-hop fields of its own). Requests must have no body.
 */
interface RawBackend extends AsyncDisposable {
  port: number;
  readonly connections: number;
  /** Request heads, as received, in order. */
  heads: string[];
}

function startRawBackend(response: string): RawBackend {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heads: string[] = [];
  const open = new Set<Deno.Conn>();
  let connections = 0;
  const serve = async (conn: Deno.Conn) => {
    const reader = new ConnReader(conn);
    try {
      for (;;) {
        const head = await reader.readUntil("\r\n\r\n", 10_000);
        if (head === null) return;
        heads.push(decoder.decode(head));
        await writeFully(conn, encoder.encode(response));
        if (/^connection: *close/im.test(response)) return;
      }
    } catch {
      // The proxy closed an idle connection, or the test is over.
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        connections++;
        open.add(conn);
        serve(conn);
      }
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    heads,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const c of open) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

function rawResponse(extraHeaders: string, body: string, close = false): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${encoder.encode(body).length}\r\n${extraHeaders}` +
    (close ? "connection: close\r\n" : "") + `\r\n${body}`;
}

// ---------------------------------------------------------------------------------------------
// The proxy under test
// ---------------------------------------------------------------------------------------------

interface Upstreams {
  app: number;
  special: number;
  raw: number;
}

function edgeConfig(up: Upstreams, http = ""): string {
  return `
version: 1
${http}
certificates:
  files:
    - { cert: testdata/certs/prometheus.pem, key: testdata/certs/prometheus.key }
    - { cert: testdata/certs/edge-wildcard.pem, key: testdata/certs/edge-wildcard.key }
  default: prometheus.example.test
  watch_interval: 0s
backends:
  app: { servers: ["127.0.0.1:${up.app}"] }
  special: { servers: ["127.0.0.1:${up.special}"] }
  raw: { servers: ["127.0.0.1:${up.raw}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: prometheus, sni: prometheus.example.test, edge: app }
      - name: apps
        sni: "*.example.test"
        edge:
          http:
            - { name: api-status, host: api.example.test, path: /v1/status, backend: app }
            - name: api-v1
              host: api.example.test
              path_prefix: /v1
              strip_prefix: true
              backend: app
            - name: api-admin
              host: api.example.test
              path_prefix: /v1/admin
              rewrite_prefix: /internal/admin
              backend: app
            - name: api-moved
              host: api.example.test
              path_prefix: /old
              redirect: { to: "https://www.example.test/new", status: 301 }
            - { name: wild, host: "*.example.test", path_prefix: /wild, backend: app }
            - name: www
              host: www.example.test
              backend: app
              request_headers:
                set: { x-env: edge }
                add: { x-extra: added }
                remove: [x-drop]
              response_headers:
                set: { content-type: text/x-edge }
                add: { x-added: "yes" }
                remove: [x-backend]
            - { name: special, host: special.example.test, backend: special }
            - { name: raw, host: raw.example.test, backend: raw }
      - { name: fallback, edge: app }
`;
}

/** curl through the proxy to `https://NAME:PORT/PATH`, with the name resolved to loopback. */
function curlVia(
  port: number,
  name: string,
  path: string,
  version: "1.1" | "2",
  extra: string[] = [],
  stdin?: string,
): Promise<CurlResult> {
  return curl([
    version === "2" ? "--http2" : "--http1.1",
    "--cacert",
    CA,
    "--resolve",
    `${name}:${port}:127.0.0.1`,
    ...extra,
    `https://${name}:${port}${path}`,
  ], { stdin });
}

const VERSIONS = ["1.1", "2"] as const;

/** The request record of the one request to `path` (they arrive when the request ends). */
async function requestRecord(edgemux: TestProxy, path: string) {
  for (let i = 0; i < 100; i++) {
    const found = edgemux.requests.filter((r) => r.path === path);
    if (found.length > 0) return found[found.length - 1];
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no request record for ${path}: ${JSON.stringify(edgemux.requests)}`);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

Deno.test("edge presents edgemux's certificate chosen by exact name, wildcard and default", async (t) => {
  await using app = await startHttpBackend("app");
  await using special = startSpecialBackend();
  await using raw = startRawBackend(rawResponse("", "raw\n"));
  await using edgemux = await startEdgemux(
    edgeConfig({ app: app.port, special: special.port, raw: raw.port }),
  );
  const port = edgemux.port("https");

  await t.step("an exact name gets its own certificate, not the wildcard that also covers it", async () => {
    const r = await sClient({ port, servername: "prometheus.example.test", caFile: CA });
    equal(r.peerCN, "prometheus.example.test");
    equal(r.verifyOk, true);
  });

  await t.step("a name under *.example.test gets the wildcard certificate", async () => {
    const r = await sClient({ port, servername: "grafana.example.test", caFile: CA });
    equal(r.peerCN, "*.example.test");
    equal(r.verifyOk, true);
    const apex = await sClient({ port, servername: "example.test", caFile: CA });
    equal(apex.peerCN, "*.example.test", "edge-wildcard.pem also names example.test");
  });

  await t.step("two extra labels are not under the wildcard: the default answers", async () => {
    const r = await sClient({ port, servername: "a.b.example.test", caFile: CA });
    equal(r.peerCN, "prometheus.example.test");
    equal(r.verifyOk, false, "the default certificate does not cover a.b.example.test");
    const rec = await edgemux.waitForRecord((x) => x.sni === "a.b.example.test");
    equal(rec.route, "fallback");
  });

  await t.step("a client without SNI gets certificates.default on the route without sni", async () => {
    const r = await sClient({ port, servername: null, caFile: CA });
    equal(r.handshakeOk, true);
    equal(r.peerCN, "prometheus.example.test");
    equal(r.issuerCN, "edgemux test CA");
    const rec = await edgemux.waitForRecord((x) => x.sni === null && x.protocol === "tls");
    equal(rec.route, "fallback");
  });

  await t.step("ALPN: h2 and http/1.1 are both offered by the terminating side", async () => {
    const h2 = await sClient({ port, servername: "www.example.test", alpn: ["h2", "http/1.1"] });
    equal(h2.alpn, "h2");
    const h1 = await sClient({ port, servername: "www.example.test", alpn: ["http/1.1"] });
    equal(h1.alpn, "http/1.1");
  });
});

Deno.test("edge answers with the right status, body and headers over HTTP/1.1 and HTTP/2", async (t) => {
  await using app = await startHttpBackend("app");
  await using special = startSpecialBackend();
  await using raw = startRawBackend(rawResponse("", "raw\n"));
  await using edgemux = await startEdgemux(
    edgeConfig({ app: app.port, special: special.port, raw: raw.port }),
  );
  const port = edgemux.port("https");

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: 200 with the backend's body and headers`, async () => {
      const r = await curlVia(port, "prometheus.example.test", `/metrics?v=${v}`, v);
      equal(r.code, 0, r.stderr);
      equal(r.httpVersion, v);
      equal(r.status, 200);
      equal(r.body, `backend app GET /metrics?v=${v}\n`);
      equal(r.headers["x-backend"], "app");
      equal(r.headers["content-type"], "text/plain; charset=utf-8");
      const rec = await requestRecord(edgemux, `/metrics?v=${v}`);
      equal(rec.http, v === "2" ? "h2" : "h1");
      equal(rec.status, 200);
      equal(rec.route, "prometheus");
      equal(rec.backend, "app");
    });

    await t.step(`HTTP/${v}: a 404 from the backend passes through with its body`, async () => {
      const r = await curlVia(port, "special.example.test", "/status/404", v);
      equal(r.status, 404);
      equal(r.body, "the backend has no such page\n");
      equal(r.headers["x-backend"], "special");
    });

    await t.step(`HTTP/${v}: 404 from edgemux when no HTTP route takes the request`, async () => {
      const before = app.requests.length;
      const r = await curlVia(port, "nothing.example.test", `/here-${v}`, v);
      equal(r.status, 404);
      equal(r.body, "Not Found\n");
      equal(r.headers["x-backend"], undefined);
      equal(app.requests.length, before, "nothing reached a backend");
      equal((await requestRecord(edgemux, `/here-${v}`)).end, "not-found");
      // Near miss: the same host under a path a route takes.
      const hit = await curlVia(port, "nothing.example.test", `/wild/${v}`, v);
      equal(hit.status, 200);
      equal(hit.body, `backend app GET /wild/${v}\n`);
    });

    await t.step(`HTTP/${v}: 421 when Host is a name the SNI's route does not cover`, async () => {
      const before = app.requests.length;
      const r = await curlVia(port, "prometheus.example.test", `/misdirected-${v}`, v, [
        "-H",
        `Host: www.example.test:${port}`,
      ]);
      equal(r.status, 421);
      equal(r.body, "Misdirected Request\n");
      equal(app.requests.length, before);
      equal((await requestRecord(edgemux, `/misdirected-${v}`)).end, "misdirected");
      // Near misses: the SNI's own name in another case with its port, and on the wildcard
      // route another name the same route covers (HTTP/2 connection reuse).
      const same = await curlVia(port, "prometheus.example.test", "/same", v, [
        "-H",
        `Host: PROMETHEUS.example.test:${port}`,
      ]);
      equal(same.status, 200);
      const sibling = await curlVia(port, "special.example.test", "/sibling", v, [
        "-H",
        `Host: www.example.test:${port}`,
      ]);
      equal(sibling.status, 200);
      equal(sibling.body, "backend app GET /sibling\n");
    });
  }
});
