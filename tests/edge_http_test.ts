/**
 * `edge` routes end to end: edgemux terminates TLS with the certificate chosen by SNI and proxies
 * HTTP/1.1 and HTTP/2 from real clients (openssl s_client, curl) to plain HTTP backends. The
 * backends record what reached them, so each test checks both sides of the proxy.
 * Long because most cases run over HTTP/1.1 and HTTP/2 against backends written for these tests
 * (special, raw, streaming), which the cases share.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { type HttpBackend, serveHttp, serveTcp, startHttpBackend } from "./_helpers/backends.ts";
import { certPath, readCert } from "./_helpers/certs.ts";
import { curl, curlHttps } from "./_helpers/curl.ts";
import { sha256Hex, startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";
import {
  connectTlsByName,
  ConnReader,
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

/** The SSE stream the brief asks for: an event every 200 ms. */
const SSE_EVENTS = 6;
const SSE_INTERVAL_MS = 200;
/** A burst: many small events 5 ms apart, where Nagle's algorithm would batch them. */
const BURST_EVENTS = 30;
const BURST_INTERVAL_MS = 5;

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
  const handler = (req: Request) => {
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
        return new Response(req.body, {
          headers: { "content-type": "application/octet-stream" },
        });
      }
      case "/sse": {
        const sent: number[] = [];
        sseSent.set(url.searchParams.get("id") ?? "", sent);
        const count = Number(url.searchParams.get("n") ?? SSE_EVENTS);
        const every = Number(url.searchParams.get("every") ?? SSE_INTERVAL_MS);
        let i = 0;
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (i > 0) await new Promise((r) => setTimeout(r, every));
            sent.push(performance.now());
            controller.enqueue(encoder.encode(`id: ${i}\ndata: event-${i}\n\n`));
            if (++i === count) controller.close();
          },
        }, { highWaterMark: 0 });
        return new Response(body, {
          headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
        });
      }
      default:
        return new Response("special backend\n");
    }
  };
  const server = serveHttp(handler, {
    onError: () => new Response("backend error\n", { status: 500 }),
  });
  return { port: server.port, sseSent, echoHeaders, [Symbol.asyncDispose]: server.close };
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
  const heads: string[] = [];
  const server = serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    // Ends when the proxy closes an idle connection, or when the test is over.
    const reader = new ConnReader(conn);
    for (;;) {
      const head = await reader.readUntil("\r\n\r\n", 10_000);
      if (head === null) return;
      heads.push(decoder.decode(head));
      await writeFully(conn, encoder.encode(response));
      if (/^connection: *close/im.test(response)) return;
    }
  });
  return {
    port: server.port,
    get connections() {
      return server.connections;
    },
    heads,
    [Symbol.asyncDispose]: server.close,
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

const VERSIONS = ["1.1", "2"] as const;

/** The three backends, and edgemux in front of them on {@linkcode edgeConfig}. */
interface EdgeSetup extends AsyncDisposable {
  app: HttpBackend;
  special: SpecialBackend;
  raw: RawBackend;
  edgemux: TestProxy;
  /** The port of the `https` listener. */
  port: number;
}

/**
 * Starts the backends and edgemux. The raw backend answers every request with `rawReply`;
 * `http` goes into the config as it is.
 */
async function startEdge(rawReply = rawResponse("", "raw\n"), http = ""): Promise<EdgeSetup> {
  const app = await startHttpBackend("app");
  const special = startSpecialBackend();
  const raw = startRawBackend(rawReply);
  const stopBackends = async () => {
    await raw[Symbol.asyncDispose]();
    await special[Symbol.asyncDispose]();
    await app.close();
  };
  try {
    const edgemux = await startEdgemux(
      edgeConfig({ app: app.port, special: special.port, raw: raw.port }, http),
    );
    return {
      app,
      special,
      raw,
      edgemux,
      port: edgemux.port("https"),
      async [Symbol.asyncDispose]() {
        await edgemux.stop();
        await stopBackends();
      },
    };
  } catch (e) {
    await stopBackends();
    throw e;
  }
}

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
  await using edge = await startEdge();
  const { edgemux, port } = edge;

  await t.step(
    "an exact name gets its own certificate, not the wildcard that also covers it",
    async () => {
      const r = await sClient({ port, servername: "prometheus.example.test", caFile: CA });
      equal(r.peerCN, "prometheus.example.test");
      equal(r.verifyOk, true);
    },
  );

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

  await t.step(
    "a client without SNI gets certificates.default on the route without sni",
    async () => {
      const r = await sClient({ port, servername: null, caFile: CA });
      equal(r.handshakeOk, true);
      equal(r.peerCN, "prometheus.example.test");
      equal(r.issuerCN, "edgemux test CA");
      const rec = await edgemux.waitForRecord((x) => x.sni === null && x.protocol === "tls");
      equal(rec.route, "fallback");
    },
  );

  await t.step("ALPN: h2 and http/1.1 are both offered by the terminating side", async () => {
    const h2 = await sClient({ port, servername: "www.example.test", alpn: ["h2", "http/1.1"] });
    equal(h2.alpn, "h2");
    const h1 = await sClient({ port, servername: "www.example.test", alpn: ["http/1.1"] });
    equal(h1.alpn, "http/1.1");
  });
});

Deno.test("edge answers with the right status, body and headers over HTTP/1.1 and HTTP/2", async (t) => {
  await using edge = await startEdge();
  const { app, edgemux, port } = edge;

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: 200 with the backend's body and headers`, async () => {
      const r = await curlHttps(port, "prometheus.example.test", `/metrics?v=${v}`, v);
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
      const r = await curlHttps(port, "special.example.test", "/status/404", v);
      equal(r.status, 404);
      equal(r.body, "the backend has no such page\n");
      equal(r.headers["x-backend"], "special");
    });

    await t.step(`HTTP/${v}: 404 from edgemux when no HTTP route takes the request`, async () => {
      const before = app.requests.length;
      const r = await curlHttps(port, "nothing.example.test", `/here-${v}`, v);
      equal(r.status, 404);
      equal(r.body, "Not Found\n");
      equal(r.headers["x-backend"], undefined);
      equal(app.requests.length, before, "nothing reached a backend");
      equal((await requestRecord(edgemux, `/here-${v}`)).end, "not-found");
      // Near miss: the same host under a path a route takes.
      const hit = await curlHttps(port, "nothing.example.test", `/wild/${v}`, v);
      equal(hit.status, 200);
      equal(hit.body, `backend app GET /wild/${v}\n`);
    });

    await t.step(`HTTP/${v}: 421 when Host is a name the SNI's route does not cover`, async () => {
      const before = app.requests.length;
      const r = await curlHttps(port, "prometheus.example.test", `/misdirected-${v}`, v, [
        "-H",
        `Host: www.example.test:${port}`,
      ]);
      equal(r.status, 421);
      equal(r.body, "Misdirected Request\n");
      equal(app.requests.length, before);
      equal((await requestRecord(edgemux, `/misdirected-${v}`)).end, "misdirected");
      // Near misses: the SNI's own name in another case with its port, and on the wildcard
      // route another name the same route covers (HTTP/2 connection reuse).
      const same = await curlHttps(port, "prometheus.example.test", "/same", v, [
        "-H",
        `Host: PROMETHEUS.example.test:${port}`,
      ]);
      equal(same.status, 200);
      const sibling = await curlHttps(port, "special.example.test", "/sibling", v, [
        "-H",
        `Host: www.example.test:${port}`,
      ]);
      equal(sibling.status, 200);
      equal(sibling.body, "backend app GET /sibling\n");
    });
  }
});

Deno.test("edge sets X-Forwarded-For, X-Forwarded-Proto and Forwarded from the real client", async (t) => {
  await using edge = await startEdge();
  const { app, edgemux, port } = edge;
  const host = `prometheus.example.test:${port}`;

  for (const v of VERSIONS) {
    await t.step(
      `HTTP/${v}: the backend sees the client's own address, not the loopback hop`,
      async () => {
        // The client binds 127.0.0.5; edgemux's internal TLS hop runs from 127.0.0.1.
        const r = await curlHttps(port, "prometheus.example.test", `/who-${v}`, v, [
          "--interface",
          "127.0.0.5",
        ]);
        equal(r.status, 200, r.stderr);
        const seen = app.requests.find((x) => x.path === `/who-${v}`)!;
        equal(seen.headers["x-forwarded-for"], "127.0.0.5");
        equal(seen.headers["x-forwarded-proto"], "https");
        equal(seen.headers["x-forwarded-host"], host);
        equal(seen.headers["forwarded"], `for=127.0.0.5;proto=https;host="${host}"`);
        // Upstream is always HTTP/1.1: under h2, Host is made from :authority.
        equal(seen.headers["host"], host);
        equal((await requestRecord(edgemux, `/who-${v}`)).client, "127.0.0.5");
      },
    );

    await t.step(
      `HTTP/${v}: a client's own X-Forwarded-For and Forwarded are replaced`,
      async () => {
        const r = await curlHttps(port, "prometheus.example.test", `/spoof-${v}`, v, [
          "-H",
          "X-Forwarded-For: 6.6.6.6",
          "-H",
          "Forwarded: for=6.6.6.6",
          "-H",
          "X-Forwarded-Proto: http",
        ]);
        equal(r.status, 200);
        const seen = app.requests.find((x) => x.path === `/spoof-${v}`)!;
        equal(seen.headers["x-forwarded-for"], "127.0.0.1");
        equal(seen.headers["x-forwarded-proto"], "https");
        equal(seen.headers["forwarded"], `for=127.0.0.1;proto=https;host="${host}"`);
      },
    );
  }
});

Deno.test("edge keeps and extends forwarding fields only from http.trusted_proxies", async (t) => {
  await using edge = await startEdge(
    rawResponse("", "raw\n"),
    "http: { trusted_proxies: [127.0.0.1/32] }",
  );
  const { app, port } = edge;
  const host = `prometheus.example.test:${port}`;
  const spoof = ["-H", "X-Forwarded-For: 6.6.6.6", "-H", "Forwarded: for=6.6.6.6"];

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: from 127.0.0.1 (trusted) the chain is kept and extended`, async () => {
      const r = await curlHttps(port, "prometheus.example.test", `/trusted-${v}`, v, spoof);
      equal(r.status, 200);
      const seen = app.requests.find((x) => x.path === `/trusted-${v}`)!;
      equal(seen.headers["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
      equal(seen.headers["forwarded"], `for=6.6.6.6, for=127.0.0.1;proto=https;host="${host}"`);
    });

    await t.step(`HTTP/${v}: from 127.0.0.5 (not trusted) it is replaced`, async () => {
      const r = await curlHttps(port, "prometheus.example.test", `/untrusted-${v}`, v, [
        ...spoof,
        "--interface",
        "127.0.0.5",
      ]);
      equal(r.status, 200);
      const seen = app.requests.find((x) => x.path === `/untrusted-${v}`)!;
      equal(seen.headers["x-forwarded-for"], "127.0.0.5");
      equal(seen.headers["forwarded"], `for=127.0.0.5;proto=https;host="${host}"`);
    });
  }
});

Deno.test("edge removes hop-by-hop fields in both directions", async (t) => {
  await using edge = await startEdge(
    rawResponse(
      "connection: foo\r\nfoo: bar\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\n" +
        "x-kept: yes\r\n",
      "raw\n",
    ),
  );
  const { raw, port } = edge;

  await t.step("HTTP/1.1: fields named in Connection never reach the backend", async () => {
    const r = await curlHttps(port, "raw.example.test", "/hop", "1.1", [
      "-H",
      "Connection: x-secret",
      "-H",
      "X-Secret: 1",
      "-H",
      "Keep-Alive: timeout=5",
      "-H",
      "Proxy-Connection: keep-alive",
      "-H",
      "X-Visible: 1",
    ]);
    equal(r.status, 200, r.stderr);
    const head = raw.heads.at(-1)!;
    ok(head.startsWith("GET /hop HTTP/1.1\r\n"), head);
    ok(/^x-visible: 1\r$/im.test(head), `x-visible was dropped too:\n${head}`);
    for (const gone of [/^x-secret:/im, /^keep-alive:/im, /^proxy-connection:/im, /x-secret/i]) {
      ok(!gone.test(head), `${gone} reached the backend:\n${head}`);
    }
    ok(!/^connection:(?!.*close)/im.test(head), `the client's Connection was passed on:\n${head}`);
  });

  for (const v of VERSIONS) {
    await t.step(
      `HTTP/${v}: the backend's Connection-named and hop-by-hop fields stay behind`,
      async () => {
        const r = await curlHttps(port, "raw.example.test", `/hop-back-${v}`, v);
        equal(r.status, 200);
        equal(r.body, "raw\n");
        equal(r.headers["x-kept"], "yes");
        equal(r.headers["foo"], undefined);
        equal(r.headers["keep-alive"], undefined);
        equal(r.headers["proxy-connection"], undefined);
        if (v === "1.1") ok(!(r.headers["connection"] ?? "").includes("foo"));
        else equal(r.headers["connection"], undefined);
      },
    );
  }
});

Deno.test("edge HTTP routes: host and path precedence, prefix rewrites, redirects, header changes", async (t) => {
  await using edge = await startEdge();
  const { app, edgemux, port } = edge;
  const api = (path: string, v: "1.1" | "2" = "1.1") =>
    curlHttps(port, "api.example.test", path, v);
  /** The path the backend received for the request that edgemux logged under `path`. */
  const routed = async (path: string, v: "1.1" | "2" = "1.1") => {
    const r = await api(path, v);
    const rec = await requestRecord(edgemux, path);
    return { status: r.status, body: r.body, route: rec.route, headers: r.headers };
  };

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: an exact path beats the prefix that also covers it`, async () => {
      const r = await routed(`/v1/status?v=${v}`, v);
      equal(r.route, "api-status");
      equal(r.body, `backend app GET /v1/status?v=${v}\n`);
    });

    await t.step(`HTTP/${v}: strip_prefix removes the matched prefix, query kept`, async () => {
      const r = await routed(`/v1/status/more?v=${v}`, v);
      equal(r.route, "api-v1");
      equal(r.body, `backend app GET /status/more?v=${v}\n`);
    });
  }

  await t.step("strip_prefix of the whole path leaves /", async () => {
    const r = await routed("/v1?whole=1");
    equal(r.route, "api-v1");
    equal(r.body, "backend app GET /?whole=1\n");
  });

  await t.step(
    "the longer prefix wins although it comes later; rewrite_prefix replaces it",
    async () => {
      const r = await routed("/v1/admin/users?q=1");
      equal(r.route, "api-admin");
      equal(r.body, "backend app GET /internal/admin/users?q=1\n");
    },
  );

  await t.step("a prefix matches at segment boundaries only: /v1x is no /v1", async () => {
    const before = app.requests.length;
    const r = await routed("/v1x");
    equal(r.status, 404);
    equal(r.route, null);
    equal(app.requests.length, before);
  });

  await t.step(
    "a path the exact host's routes do not take falls through to the wildcard host",
    async () => {
      const r = await routed("/wild/card");
      equal(r.route, "wild");
      equal(r.body, "backend app GET /wild/card\n");
    },
  );

  await t.step("a redirect route answers itself with its status and Location", async () => {
    const before = app.requests.length;
    for (const v of VERSIONS) {
      const r = await curlHttps(port, "api.example.test", "/old/page?x=1", v);
      equal(r.status, 301);
      equal(r.headers["location"], "https://www.example.test/new");
    }
    equal(app.requests.length, before);
  });

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: request_headers set, add and remove reach the backend`, async () => {
      const r = await curlHttps(port, "www.example.test", `/headers-${v}`, v, [
        "-H",
        "x-env: client",
        "-H",
        "x-drop: please",
        "-H",
        "x-extra: client",
        "-H",
        "x-untouched: 1",
      ]);
      equal(r.status, 200);
      const seen = app.requests.find((x) => x.path === `/headers-${v}`)!;
      equal(seen.headers["x-env"], "edge");
      equal(seen.headers["x-drop"], undefined);
      equal(seen.headers["x-extra"], "client, added");
      equal(seen.headers["x-untouched"], "1");
    });

    await t.step(`HTTP/${v}: response_headers set, add and remove reach the client`, async () => {
      const r = await curlHttps(port, "www.example.test", `/response-${v}`, v);
      equal(r.status, 200);
      equal(r.headers["content-type"], "text/x-edge");
      equal(r.headers["x-added"], "yes");
      equal(r.headers["x-backend"], undefined);
      // Near miss: another route of the same TLS route keeps the backend's headers.
      const other = await curlHttps(port, "nothing.example.test", "/wild/h", v);
      equal(other.headers["x-backend"], "app");
      equal(other.headers["x-added"], undefined);
    });
  }
});

Deno.test("edge reuses one upstream connection for sequential keep-alive requests", async (t) => {
  const N = 20;
  /** One curl run for `count` paths on raw.example.test, so curl may keep one connection. */
  const curlRaw = (port: number, v: "1.1" | "2", prefix: string, count: number) =>
    curl([
      v === "2" ? "--http2" : "--http1.1",
      "--cacert",
      CA,
      "--resolve",
      `raw.example.test:${port}:127.0.0.1`,
      ...Array.from({ length: count }, (_, i) => `https://raw.example.test:${port}/${prefix}${i}`),
    ]);

  for (const v of VERSIONS) {
    await t.step(
      `HTTP/${v}: ${N} requests on one client connection use one backend connection`,
      async () => {
        await using edge = await startEdge();
        const { raw, edgemux, port } = edge;
        const r = await curlRaw(port, v, "k", N);
        equal(r.code, 0, r.stderr);
        equal(raw.heads.length, N);
        equal(raw.connections, 1, `the backend saw ${raw.connections} connections`);
        const records = edgemux.requests.filter((x) => x.host === "raw.example.test");
        equal(records.length, N);
        equal(new Set(records.map((x) => x.conn)).size, 1, "curl used one client connection");
        equal(records.every((x) => x.http === (v === "2" ? "h2" : "h1")), true);
      },
    );
  }

  await t.step(
    "near miss: a backend that answers Connection: close is dialled per request",
    async () => {
      await using edge = await startEdge(rawResponse("", "raw\n", true));
      const { raw, port } = edge;
      const r = await curlRaw(port, "1.1", "c", 5);
      equal(r.code, 0, r.stderr);
      equal(raw.heads.length, 5);
      equal(raw.connections, 5);
    },
  );
});

Deno.test("edge passes a gzip body through byte for byte over HTTP/1.1 and HTTP/2", async (t) => {
  await using edge = await startEdge();
  const { edgemux, port } = edge;
  await using dir = await makeTempDir("edgemux-gzip-");
  const curlBin = requireTool("curl", "curl");
  const expected = await sha256Hex(GZIP_BODY);

  for (const v of VERSIONS) {
    for (const path of ["/gzip", "/gzip-chunked"]) {
      await t.step(`HTTP/${v} ${path}: the same bytes and content-encoding arrive`, async () => {
        const file = `${dir.path}/body-${v}${path.replace("/", "-")}`;
        const headerFile = `${file}.headers`;
        // No --compressed: curl must store the body as it came off the wire.
        const res = await run(curlBin, [
          "-sS",
          v === "2" ? "--http2" : "--http1.1",
          "--cacert",
          CA,
          "--resolve",
          `special.example.test:${port}:127.0.0.1`,
          "-H",
          "accept-encoding: gzip",
          "-o",
          file,
          "-D",
          headerFile,
          `https://special.example.test:${port}${path}`,
        ], { timeoutMs: 10_000 });
        equal(res.code, 0, res.stderr);
        const body = await Deno.readFile(file);
        equal(body.length, GZIP_BODY.length);
        equal(await sha256Hex(body), expected);
        const headers = (await Deno.readTextFile(headerFile)).toLowerCase();
        ok(headers.includes("content-encoding: gzip"), headers);
        if (path === "/gzip") ok(headers.includes(`content-length: ${GZIP_BODY.length}`), headers);
        const rec = await requestRecord(edgemux, path);
        equal(rec.status, 200);
        // HTTP/1.1 relays the chunked framing as it is and counts it; HTTP/2 counts content.
        if (path === "/gzip" || v === "2") equal(rec.bytes_out, GZIP_BODY.length);
      });
    }
  }
});

/** Runs `curl -N` on an SSE stream and returns when each event reached curl's stdout. */
async function sseArrivals(
  port: number,
  v: "1.1" | "2",
  id: string,
  count: number,
  every: number,
): Promise<number[]> {
  const curlBin = requireTool("curl", "curl");
  await using proc = startProcess(curlBin, [
    "-sS",
    "-N",
    v === "2" ? "--http2" : "--http1.1",
    "--cacert",
    CA,
    "--resolve",
    `special.example.test:${port}:127.0.0.1`,
    `https://special.example.test:${port}/sse?id=${id}&n=${count}&every=${every}`,
  ]);
  // Every waiter is registered before the first byte can arrive, so each resolves in the same
  // turn as the output chunk that completes its event.
  const arrivals = Array.from(
    { length: count },
    (_, i) => proc.waitForOutput(`data: event-${i}\n\n`, 10_000).then(() => performance.now()),
  );
  const times = await Promise.all(arrivals);
  const status = await proc.exited;
  equal(status.code, 0, proc.output());
  return times;
}

/** Per event, how long it took from the backend's write to curl's stdout. */
async function sseGaps(
  special: SpecialBackend,
  port: number,
  v: "1.1" | "2",
  id: string,
  count: number,
  every: number,
): Promise<{ seen: number[]; sent: number[]; gaps: number[] }> {
  const seen = await sseArrivals(port, v, id, count, every);
  const sent = special.sseSent.get(id)!;
  equal(sent.length, count);
  const gaps = seen.map((at, i) => at - sent[i]);
  console.log(
    `    SSE over HTTP/${v}, ${count} events ${every} ms apart: backend write → curl stdout (ms): ` +
      gaps.map((g) => g.toFixed(1)).join(", "),
  );
  return { seen, sent, gaps };
}

// A Nagle stall on loopback holds a small write until the peer's delayed ACK, about 40 ms;
// without one, an event takes about 1 ms from the backend to curl.
const MAX_EVENT_GAP_MS = 25;

Deno.test("edge streams Server-Sent Events as they are written, without Nagle stalls", async (t) => {
  await using edge = await startEdge();
  const { special, edgemux, port } = edge;

  for (const v of VERSIONS) {
    await t.step(
      `HTTP/${v}: an event every ${SSE_INTERVAL_MS} ms arrives before the next is written`,
      async () => {
        const id = `slow-${v}`;
        const { seen, sent, gaps } = await sseGaps(
          special,
          port,
          v,
          id,
          SSE_EVENTS,
          SSE_INTERVAL_MS,
        );
        for (let i = 0; i + 1 < SSE_EVENTS; i++) {
          ok(seen[i] < sent[i + 1], `event ${i} arrived only after event ${i + 1} was written`);
        }
        for (const [i, gap] of gaps.entries()) {
          ok(gap < MAX_EVENT_GAP_MS, `event ${i} took ${gap.toFixed(1)} ms to reach the client`);
        }
        const rec = await requestRecord(
          edgemux,
          `/sse?id=${id}&n=${SSE_EVENTS}&every=${SSE_INTERVAL_MS}`,
        );
        equal(rec.status, 200);
        ok(rec.ms >= (SSE_EVENTS - 1) * SSE_INTERVAL_MS, `the stream lasted ${rec.ms} ms`);
      },
    );

    await t.step(
      `HTTP/${v}: a burst of events ${BURST_INTERVAL_MS} ms apart is not batched`,
      async () => {
        const { gaps } = await sseGaps(
          special,
          port,
          v,
          `burst-${v}`,
          BURST_EVENTS,
          BURST_INTERVAL_MS,
        );
        const stalled = gaps.flatMap((g, i) =>
          g < MAX_EVENT_GAP_MS ? [] : [`#${i} ${g.toFixed(1)}`]
        );
        deepEqual(stalled, [], `events held back (ms): ${stalled.join(", ")}`);
      },
    );
  }
});

Deno.test("edge streams request bodies to the backend and the echo back", async (t) => {
  await using edge = await startEdge();
  const { special, port } = edge;
  // 300 KB of text, so it spans many TLS records and reads; no byte repeats at one offset.
  const body = Array.from({ length: 30_000 }, (_, i) => `${i}`.padStart(9, "x") + "\n").join("");
  const echo = (v: "1.1" | "2", extra: string[]) =>
    curlHttps(port, "special.example.test", "/echo", v, [
      "-H",
      "content-type: application/octet-stream",
      ...extra,
    ], { stdin: body });

  for (const v of VERSIONS) {
    await t.step(`HTTP/${v}: a body with Content-Length comes back whole`, async () => {
      const r = await echo(v, ["--data-binary", "@-"]);
      equal(r.status, 200, r.stderr);
      equal(r.body.length, body.length);
      ok(r.body === body, "the echoed body differs");
      const seen = special.echoHeaders.at(-1)!;
      equal(seen["content-length"], String(body.length));
      equal(seen["transfer-encoding"], undefined);
    });
  }

  await t.step("HTTP/1.1: a chunked body is forwarded chunked and comes back whole", async () => {
    const r = await echo("1.1", ["-H", "Transfer-Encoding: chunked", "--data-binary", "@-"]);
    equal(r.status, 200, r.stderr);
    ok(r.body === body, "the echoed body differs");
    const seen = special.echoHeaders.at(-1)!;
    equal(seen["transfer-encoding"], "chunked");
    equal(seen["content-length"], undefined);
  });

  await t.step(
    "HTTP/2: a body of unknown length is forwarded chunked and comes back whole",
    async () => {
      // -T - reads stdin as it goes, so curl cannot announce a length.
      const r = await echo("2", ["-X", "POST", "-T", "-"]);
      equal(r.status, 200, r.stderr);
      ok(r.body === body, "the echoed body differs");
      const seen = special.echoHeaders.at(-1)!;
      equal(seen["transfer-encoding"], "chunked");
    },
  );

  await t.step(
    "HTTP/1.1: Expect: 100-continue gets the backend's 100 before the body is sent",
    async () => {
      const started = performance.now();
      // curl waits this long for a 100 before sending the body anyway.
      const r = await echo("1.1", [
        "-v",
        "--expect100-timeout",
        "5",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "@-",
      ]);
      const elapsed = performance.now() - started;
      equal(r.status, 200, r.stderr);
      ok(/< HTTP\/1\.1 100 Continue/i.test(r.stderr), `curl saw no 100 Continue:\n${r.stderr}`);
      ok(r.body === body, "the echoed body differs");
      ok(elapsed < 3000, `the upload waited ${Math.round(elapsed)} ms for a 100 Continue`);
      equal(special.echoHeaders.at(-1)!["expect"], "100-continue");
    },
  );

  await t.step("HTTP/1.1: request and response flow at the same time (full duplex)", async () => {
    const { conn } = await connectTlsByName({
      port,
      serverName: "special.example.test",
      caCerts: [readCert("ca")],
    });
    try {
      const reader = new ConnReader(conn);
      await writeFully(
        conn,
        encoder.encode(
          `POST /echo HTTP/1.1\r\nHost: special.example.test:${port}\r\n` +
            "Transfer-Encoding: chunked\r\n\r\n",
        ),
      );
      let received = "";
      const head = await (async () => {
        for (let i = 1; i <= 3; i++) {
          const piece = `ping-${i};`;
          await writeFully(conn, encoder.encode(`${piece.length.toString(16)}\r\n${piece}\r\n`));
          // Each piece must come back before the next is sent.
          while (!received.includes(piece)) {
            const chunk = await reader.readSome(3000);
            if (chunk === null) throw new Error(`closed; got ${JSON.stringify(received)}`);
            received += decoder.decode(chunk);
          }
        }
        return parseResponseHead(encoder.encode(received.slice(0, received.indexOf("\r\n\r\n"))));
      })();
      equal(head.status, 200);
      equal(head.headers["transfer-encoding"], "chunked");
      await writeFully(conn, encoder.encode("0\r\n\r\n"));
      while (!received.endsWith("0\r\n\r\n")) {
        const chunk = await reader.readSome(3000);
        if (chunk === null) break;
        received += decoder.decode(chunk);
      }
      ok(received.endsWith("0\r\n\r\n"), `the response did not end: ${JSON.stringify(received)}`);
    } finally {
      conn.close();
    }
  });
});
