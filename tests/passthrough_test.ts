/**
 * TLS passthrough by SNI, end to end: real TLS servers behind edgemux, real openssl and curl in
 * front. The certificate the client sees must be the backend's own.
 */

import { equal, match, ok } from "node:assert/strict";
import { startTlsHttpBackend } from "./_helpers/backends.ts";
import { certPath } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { readAll, startEdgemux } from "./_helpers/edgemux.ts";
import { startEdgemuxCli, waitForLogLines } from "./_helpers/edgemux_cli.ts";
import { sClient } from "./_helpers/openssl.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

Deno.test("passthrough routes by exact, wildcard and default SNI to each backend's own certificate", async (t) => {
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
      - { name: vault, sni: vault.example.test, passthrough: vault }
      - { name: apps, sni: "*.apps.example.test", passthrough: apps }
      - { name: default, protocol: tls, passthrough: fallback }
`);
  const port = edgemux.port("https");
  const ca = certPath("ca");

  await t.step("an exact name reaches vault and shows vault's certificate", async () => {
    const r = await sClient({ port, servername: "vault.example.test", caFile: ca });
    equal(r.peerCN, "vault.example.test");
    equal(r.verifyOk, true);
    const rec = await edgemux.waitForRecord((x) => x.sni === "vault.example.test");
    equal(rec.route, "vault");
    equal(rec.server, `127.0.0.1:${vault.port}`);
  });

  await t.step("a name under the wildcard reaches apps", async () => {
    const r = await sClient({ port, servername: "grafana.apps.example.test", caFile: ca });
    equal(r.peerCN, "*.apps.example.test");
    equal(r.verifyOk, true);
  });

  await t.step(
    "the wildcard does not match two extra labels; the default route takes it",
    async () => {
      const r = await sClient({ port, servername: "a.b.apps.example.test", caFile: ca });
      equal(r.peerCN, "default.example.test");
    },
  );

  await t.step("an unknown name and a hello without SNI go to the default route", async () => {
    equal(
      (await sClient({ port, servername: "unknown.example.test" })).peerCN,
      "default.example.test",
    );
    equal((await sClient({ port, servername: null })).peerCN, "default.example.test");
  });

  await t.step("a name sent in upper case with a trailing dot is normalised", async () => {
    const r = await sClient({ port, servername: "VAULT.Example.Test." });
    equal(r.peerCN, "vault.example.test");
  });

  await t.step("curl over https through passthrough gets the backend's body", async () => {
    const r = await curl([
      "--cacert",
      ca,
      "--resolve",
      `vault.example.test:${port}:127.0.0.1`,
      `https://vault.example.test:${port}/secret/data?x=1`,
    ]);
    equal(r.status, 200);
    equal(r.headers["x-backend"], "vault");
    equal(r.body, "backend vault GET /secret/data?x=1\n");
  });
});

Deno.test("passthrough refuses an unknown name with unrecognized_name when there is no default route", async () => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  vault: { servers: ["127.0.0.1:${vault.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: vault.example.test, passthrough: vault }
`);
  const r = await sClient({ port: edgemux.port("https"), servername: "other.example.test" });
  equal(r.handshakeOk, false);
  equal(r.alert, "unrecognized name");
  const rec = await edgemux.waitForRecord((x) => x.sni === "other.example.test");
  equal(rec.end, "no-route");
  equal(rec.backend, null);
  // The listener keeps serving the known name.
  const ok = await sClient({ port: edgemux.port("https"), servername: "vault.example.test" });
  equal(ok.peerCN, "vault.example.test");
});

Deno.test("a reject route refuses one name carved out of a wildcard", async () => {
  await using apps = await startTlsHttpBackend("apps", "apps-wildcard");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  apps: { servers: ["127.0.0.1:${apps.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: "*.apps.example.test", passthrough: apps }
      - { name: no-admin, sni: admin.apps.example.test, reject: true }
`);
  const port = edgemux.port("https");
  const refused = await sClient({ port, servername: "admin.apps.example.test" });
  equal(refused.alert, "unrecognized name");
  equal((await edgemux.waitForRecord((x) => x.route === "no-admin")).end, "rejected");
  const ok = await sClient({ port, servername: "www.apps.example.test" });
  equal(ok.peerCN, "*.apps.example.test");
});

Deno.test("passthrough to a dead backend closes the client and logs upstream-refused", async () => {
  // Bind and close a listener to get a port that refuses connections.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (l.addr as Deno.NetAddr).port;
  l.close();
  await using edgemux = await startEdgemux(`
version: 1
backends:
  dead: { servers: ["127.0.0.1:${deadPort}"], connect_timeout: 2s }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: dead.example.test, passthrough: dead }
`);
  const r = await sClient({ port: edgemux.port("https"), servername: "dead.example.test" });
  equal(r.handshakeOk, false);
  const rec = await edgemux.waitForRecord((x) => x.sni === "dead.example.test");
  equal(rec.end, "upstream-refused");
  match(rec.detail ?? "", /refused/);
});

Deno.test("a refused TCP forward is a warning, listed under the status page's recent problems", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (l.addr as Deno.NetAddr).port;
  l.close();
  await using dir = await makeTempDir("edgemux-refused-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
log: { level: info, format: text, access: true }
admin: { bind: "127.0.0.1:0" }
backends:
  dead: { servers: ["127.0.0.1:${deadPort}"], passive_health: { failures: 0 } }
listeners:
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - { name: to-dead, forward: dead }
`,
  );
  await using cli = await startEdgemuxCli(file);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: cli.port("tcp") });
  equal((await readAll(conn)).length, 0, "the client is closed without a byte");
  conn.close();
  // Its level is checked below, in the status page's list (the log's text format may change).
  const [line] = await waitForLogLines(cli.output, "upstream connect failed", 1);
  equal(line.end, "upstream-refused");
  equal(line.backend, "dead");
  equal(line.route, "to-dead");
  equal(line.server, `127.0.0.1:${deadPort}`);
  const status = await (await fetch(`${cli.adminUrl}/status.json`)).json() as {
    recentProblems: { level: string; message: string; details: Record<string, unknown> }[];
  };
  const problem = status.recentProblems.find((p) => p.message === "upstream connect failed");
  ok(problem, JSON.stringify(status.recentProblems));
  equal(problem.level, "warning");
  equal(problem.details.end, "upstream-refused");
});
