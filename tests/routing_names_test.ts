/**
 * Server names as nginx and HAProxy users write them, with real clients: `**.suffix` matches a
 * name at any depth below the suffix (after exact names and one-label `*.` wildcards), and a
 * ClientHello whose server name is raw UTF-8 (what `openssl s_client -servername bücher.…`
 * sends) is routed as its A-label, which is what certificates and configs name.
 */

import { equal, match, ok } from "node:assert/strict";
import { startTlsHttpBackend } from "./_helpers/backends.ts";
import { certPath, EDGE_CERTIFICATES, keyPath } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { readAll, startEdgemux, writeAll } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { startProcess } from "./_helpers/process.ts";
import { requireTool } from "./_helpers/tools.ts";
import { buildClientHello } from "../proxy/_testing/hello_builder.ts";

Deno.test("passthrough by SNI: exact, then *. one label, then **. any depth, longest suffix first", async (t) => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using apps = await startTlsHttpBackend("apps", "apps-wildcard");
  await using fallback = await startTlsHttpBackend("default", "default-backend");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  vault: { servers: ["127.0.0.1:${vault.port}"] }
  apps: { servers: ["127.0.0.1:${apps.port}"] }
  fallback: { servers: ["127.0.0.1:${fallback.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: deep, sni: "**.example.test", passthrough: fallback }
      - { name: deep-apps, sni: "**.apps.example.test", passthrough: apps }
      - { name: one-label, sni: "*.apps.example.test", passthrough: vault }
      - { name: exact, sni: a.b.apps.example.test, passthrough: vault }
`);
  const port = edgemux.port("https");
  const cases: [sni: string, route: string, cn: string][] = [
    ["a.b.apps.example.test", "exact", "vault.example.test"],
    ["www.apps.example.test", "one-label", "vault.example.test"],
    ["x.www.apps.example.test", "deep-apps", "*.apps.example.test"],
    ["c.b.apps.example.test", "deep-apps", "*.apps.example.test"],
    ["apps.example.test", "deep", "default.example.test"],
    ["a.b.c.example.test", "deep", "default.example.test"],
  ];
  for (const [sni, route, cn] of cases) {
    await t.step(`${sni} → ${route}`, async () => {
      const r = await sClient({ port, servername: sni });
      ok(r.handshakeOk, r.raw);
      equal(r.peerCN, cn);
      const rec = await edgemux.waitForRecord((x) => x.sni === sni);
      equal(rec.route, route);
    });
  }
  await t.step("the bare suffix is not below itself: no route, unrecognized_name", async () => {
    const r = await sClient({ port, servername: "example.test" });
    equal(r.alert, "unrecognized name");
    equal((await edgemux.waitForRecord((x) => x.sni === "example.test")).end, "no-route");
  });
});

Deno.test("HTTP host routes behind an edge route take **. at any depth too", async () => {
  await using deep = await startTlsHttpBackend("deep", "vault");
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
  default: example.test
backends:
  deep: { servers: ["127.0.0.1:${deep.port}"], tls: { ca: testdata/certs/ca.pem, server_name: vault.example.test } }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - name: web
        sni: "**.example.test"
        reencrypt:
          http:
            - { name: one, host: "*.b.example.test", redirect: { to: "https://one.test/" } }
            - { name: deep-b, host: "**.b.example.test", backend: deep }
            - { name: deep, host: "**.example.test", redirect: { to: "https://deep.test/" } }
`);
  const port = edgemux.port("https");
  const get = (host: string) =>
    curl(["-k", "--resolve", `${host}:${port}:127.0.0.1`, `https://${host}:${port}/x`]);
  const a = await get("x.y.b.example.test");
  equal(a.status, 200);
  match(a.body, /^backend deep GET \/x/);
  equal((await get("y.b.example.test")).headers["location"], "https://one.test/");
  equal((await get("y.c.example.test")).headers["location"], "https://deep.test/");
  equal((await edgemux.waitForRequest((r) => r.host === "x.y.b.example.test")).route, "deep-b");
});

/** `openssl s_server` with the vault certificate on a port of its own, until disposed. */
async function startOpensslServer() {
  const openssl = requireTool("openssl", "openssl");
  const proc = startProcess(openssl, [
    "s_server",
    "-accept",
    "127.0.0.1:0",
    "-cert",
    certPath("vault"),
    "-key",
    keyPath("vault"),
    "-www",
  ]);
  const line = await proc.waitForOutput(/ACCEPT 127\.0\.0\.1:(\d+)/, 10_000);
  const port = Number(/ACCEPT 127\.0\.0\.1:(\d+)/.exec(line)![1]);
  return { port, [Symbol.asyncDispose]: () => proc.stop("SIGTERM").then(() => {}) };
}

Deno.test("a raw UTF-8 server name is routed as its A-label, and refused with a reason where it cannot be", async (t) => {
  await using server = await startOpensslServer();
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  books: { servers: ["127.0.0.1:${server.port}"] }
  web: { servers: ["127.0.0.1:9"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: books, sni: bücher.example.test, passthrough: books }
      - { name: shop, sni: xn--mnchen-3ya.example.test, edge: web }
`);
  const port = edgemux.port("https");

  await t.step(
    "openssl s_client -servername bücher.example.test reaches the A-label's route",
    async () => {
      const r = await sClient({ port, servername: "bücher.example.test" });
      ok(r.handshakeOk, r.raw);
      equal(r.peerCN, "vault.example.test");
      const rec = await edgemux.waitForRecord((x) => x.route === "books");
      equal(rec.sni, "xn--bcher-kva.example.test");
    },
  );

  await t.step("the same route takes the name sent as its A-label", async () => {
    const r = await sClient({ port, servername: "xn--bcher-kva.example.test" });
    ok(r.handshakeOk, r.raw);
    equal(r.peerCN, "vault.example.test");
  });

  await t.step(
    "an edge route serves the A-label, and refuses raw UTF-8 with a reason",
    async () => {
      const good = await sClient({ port, servername: "xn--mnchen-3ya.example.test" });
      ok(good.handshakeOk, good.raw);
      equal(good.peerCN, "*.example.test");
      const r = await sClient({ port, servername: "münchen.example.test" });
      equal(r.handshakeOk, false);
      equal(r.alert, "unrecognized name");
      const rec = await edgemux.waitForRecord((x) => x.end === "idn-not-terminated");
      equal(rec.sni, "xn--mnchen-3ya.example.test");
      equal(rec.route, "shop");
      match(rec.detail ?? "", /raw UTF-8.*"xn--mnchen-3ya\.example\.test"/);
    },
  );

  await t.step("invalid UTF-8, and a name IDNA refuses, are malformed with a reason", async () => {
    const cases: [bytes: string, reason: string][] = [
      ["b\xfccher.example.test", "server name is neither ASCII nor valid UTF-8"],
      [
        String.fromCharCode(...new TextEncoder().encode("xn--zz.bücher.example.test")),
        "server name is not a valid internationalized domain name (IDNA)",
      ],
    ];
    for (const [bytes, reason] of cases) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, buildClientHello({ sni: bytes }));
      const reply = await readAll(conn);
      conn.close();
      // A fatal decode_error alert.
      equal(reply.at(-1), 50);
      const rec = await edgemux.waitForRecord((x) => x.detail === reason);
      equal(rec.end, "malformed-hello");
    }
  });
});
