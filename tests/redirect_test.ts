/**
 * Plain HTTP to https: exact Location headers from curl's point of view, keep-alive and
 * pipelining, bad requests, and ACME http-01 challenges handed to a backend.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { startHttpBackend } from "./_helpers/backends.ts";
import { curl } from "./_helpers/curl.ts";
import { readAll, startEdgemux, writeAll } from "./_helpers/edgemux.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function rawExchange(port: number, request: string, halfClose = true): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(request));
    if (halfClose) await conn.closeWrite();
    return decoder.decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

Deno.test("plain HTTP gets a 308 to the same host, path and query on the https port", async (t) => {
  await using acme = await startHttpBackend("acme");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  acme: { servers: ["127.0.0.1:${acme.port}"] }
  vault: { servers: ["127.0.0.1:9"] }
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { acme_challenge: acme }
  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: vault.example.test, passthrough: vault }
      - { protocol: http, redirect: https }
`);
  const http = edgemux.port("http");
  const https = edgemux.port("https");

  await t.step("curl sees 308 with the exact Location, query included", async () => {
    const r = await curl([
      "--resolve",
      `git.example.test:${http}:127.0.0.1`,
      `http://git.example.test:${http}/org/repo.git/info/refs?service=git-upload-pack&x=%20y`,
    ]);
    equal(r.status, 308);
    equal(
      r.headers["location"],
      `https://git.example.test:${https}/org/repo.git/info/refs?service=git-upload-pack&x=%20y`,
    );
    match(r.body, /^Redirecting to https:/);
  });

  await t.step(
    "plain HTTP arriving on the TLS listener is redirected to its own port",
    async () => {
      const r = await curl([`http://127.0.0.1:${https}/ui`, "-H", "Host: vault.example.test"]);
      equal(r.status, 308);
      equal(r.headers["location"], `https://vault.example.test:${https}/ui`);
    },
  );

  await t.step("an IPv6 literal Host keeps its brackets", async () => {
    const r = await curl([`http://127.0.0.1:${http}/`, "-H", "Host: [2001:db8::1]:8080"]);
    equal(r.headers["location"], `https://[2001:db8::1]:${https}/`);
  });

  await t.step(
    "HEAD gets the headers only; POST is redirected and the connection closed",
    async () => {
      const head = await rawExchange(http, "HEAD /a HTTP/1.1\r\nHost: h.example.test\r\n\r\n");
      match(head, /^HTTP\/1\.1 308 Permanent Redirect\r\n/);
      ok(head.endsWith("\r\n\r\n"), "no body after a HEAD response");
      const post = await rawExchange(
        http,
        "POST /form HTTP/1.1\r\nHost: h.example.test\r\nContent-Length: 5\r\n\r\nhello",
        false,
      );
      match(post, /connection: close/);
      match(post, /location: https:\/\/h\.example\.test:\d+\/form/);
    },
  );

  await t.step("keep-alive serves pipelined requests in order on one connection", async () => {
    const reply = await rawExchange(
      http,
      "GET /one HTTP/1.1\r\nHost: a.example.test\r\n\r\n" +
        "GET /two HTTP/1.1\r\nHost: b.example.test\r\n\r\n" +
        "GET /three HTTP/1.1\r\nHost: c.example.test\r\nConnection: close\r\n\r\n",
      false,
    );
    const locations = [...reply.matchAll(/location: (\S+)/g)].map((m) => m[1]);
    deepEqual(locations, [
      `https://a.example.test:${https}/one`,
      `https://b.example.test:${https}/two`,
      `https://c.example.test:${https}/three`,
    ]);
    const rec = await edgemux.waitForRecord((r) => r.requests === 3);
    equal(rec.end, "redirected");
  });

  await t.step("a request without a usable Host gets 400 and no internals", async () => {
    const noHost = await rawExchange(http, "GET / HTTP/1.0\r\n\r\n");
    match(noHost, /^HTTP\/1\.1 400 Bad Request\r\n/);
    ok(!/Error|stack|\.ts/.test(noHost), "no internal text in the response");
    const garbage = await rawExchange(http, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    match(garbage, /^HTTP\/1\.1 400 /);
    const rec = await edgemux.waitForRecord((r) => r.end === "bad-request");
    ok(rec.detail !== null);
  });

  await t.step(
    "ACME http-01 challenges reach the backend with the real client address",
    async () => {
      const r = await curl([
        "--resolve",
        `www.example.test:${http}:127.0.0.1`,
        `http://www.example.test:${http}/.well-known/acme-challenge/token123`,
      ]);
      equal(r.status, 200);
      equal(r.body, "backend acme GET /.well-known/acme-challenge/token123\n");
      const seen = acme.requests.at(-1)!;
      equal(seen.headers["host"], `www.example.test:${http}`);
      equal(seen.headers["x-forwarded-for"], "127.0.0.1");
      equal(seen.headers["x-forwarded-proto"], "http");
      const rec = await edgemux.waitForRecord((x) => x.backend === "acme");
      equal(rec.server, `127.0.0.1:${acme.port}`);
    },
  );

  await t.step(
    "the ACME prefix is matched on the normalised path, which is what the backend gets",
    async () => {
      const before = acme.requests.length;
      // Dot-segments out of the prefix, plain or encoded, are redirected, not forwarded.
      for (
        const path of [
          "/.well-known/acme-challenge/../../admin",
          "/.well-known/acme-challenge/%2e%2e/%2e%2e/admin",
        ]
      ) {
        const reply = await rawExchange(
          http,
          `GET ${path} HTTP/1.1\r\nHost: www.example.test\r\n\r\n`,
        );
        match(reply, /^HTTP\/1\.1 308 /, path);
      }
      equal(acme.requests.length, before);
      // Inside the prefix, the backend gets the normalised path.
      const inside = await rawExchange(
        http,
        "GET /.well-known/acme-challenge//x/../%74oken HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
      );
      match(inside, /^HTTP\/1\.1 200 /);
      equal(acme.requests.at(-1)!.path, "/.well-known/acme-challenge/token");
    },
  );
});

Deno.test("a slow request head is closed with 408 at the head timeout", async () => {
  await using edgemux = await startEdgemux(`
version: 1
http: { request_head_timeout: 400ms, keepalive_timeout: 300ms }
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { https_port: 443 }
`);
  const port = edgemux.port("http");
  const started = performance.now();
  const reply = await rawExchange(port, "GET / HTTP/1.1\r\nHost: slow.example.test\r\n", false);
  const elapsed = performance.now() - started;
  match(reply, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  ok(elapsed >= 350 && elapsed < 3000, `closed after ${elapsed} ms`);
  equal((await edgemux.waitForRecord((r) => r.end === "request-timeout")).requests, 0);

  // An idle keep-alive connection is closed quietly after keepalive_timeout.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, encoder.encode("GET /x HTTP/1.1\r\nHost: a.example.test\r\n\r\n"));
  const rest = decoder.decode(await readAll(conn));
  conn.close();
  match(rest, /location: https:\/\/a\.example\.test\/x\r\n/);
  equal((await edgemux.waitForRecord((r) => r.end === "keepalive-timeout")).requests, 1);
});

Deno.test("every request on a redirect listener gets its own request record", async () => {
  await using edgemux = await startEdgemux(`
version: 1
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - { name: to-https, redirect: { https_port: 8443 } }
`);
  const port = edgemux.port("http");
  await rawExchange(
    port,
    "GET /one?q=1 HTTP/1.1\r\nHost: a.example.test\r\n\r\n" +
      "HEAD /two HTTP/1.1\r\nHost: b.example.test:80\r\nConnection: close\r\n\r\n",
    false,
  );
  const conn = await edgemux.waitForRecord((r) => r.requests === 2);
  const mine = () => edgemux.requests.filter((r) => r.conn === conn.conn);
  await edgemux.waitForRequest((r) => r.conn === conn.conn && r.path === "/two");
  deepEqual(
    mine().map((r) => [r.method, r.host, r.path, r.status, r.route, r.end, r.http]),
    [
      ["GET", "a.example.test", "/one?q=1", 308, "to-https", "redirected", "h1"],
      ["HEAD", "b.example.test:80", "/two", 308, "to-https", "redirected", "h1"],
    ],
  );
  equal(mine()[0].listener, "http");
  equal(mine()[0].client, "127.0.0.1");

  // A request that cannot be redirected is recorded too, with its status and reason.
  await rawExchange(port, "GET / HTTP/1.0\r\n\r\n");
  const noHost = await edgemux.waitForRequest((r) => r.status === 400);
  equal(noHost.end, "bad-request");
  equal(noHost.detail, "no usable host");
  await rawExchange(port, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
  const garbage = await edgemux.waitForRequest((r) => r.status === 400 && r.method === "-");
  equal(garbage.end, "bad-request");
});
