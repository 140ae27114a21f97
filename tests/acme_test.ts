/**
 * ACME end to end against a real CA: Debian's pebble, validating HTTP-01 and TLS-ALPN-01
 * through edgemux's own listeners (pebble's httpPort and tlsPort are their ports, and its DNS,
 * pebble-challtestsrv, answers 127.0.0.1 for every name). Clients check the issued
 * certificate against pebble's issuing root.
 *
 * Long because each of its eleven cases runs a whole ACME exchange with a fresh pebble (both
 * challenges, stored state, renewal, an unreachable or refusing CA, workers), on the setup and
 * config builder they share at its top.
 */

import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import type { X509Certificate } from "node:crypto";
import { startHttpBackend, startTlsHttpBackend } from "./_helpers/backends.ts";
import { certPath } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { patternSha256, startDownloadBackend } from "./_helpers/download_backend.ts";
import { serveHttp } from "./_helpers/backends.ts";
import {
  openWebSocket,
  type WebSocketClient,
  type WebSocketMessage,
} from "./_helpers/websocket.ts";
import { renderPrometheus } from "../proxy/observe/metrics.ts";
import { renderStatusPage } from "../proxy/observe/status.ts";
import { type Pebble, startPebble } from "./_helpers/pebble.ts";
import { pickFreePort } from "./_helpers/ports.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { HEADLESS_CHROMIUM_FLAGS } from "./_helpers/chromium.ts";
import { run } from "./_helpers/process.ts";
import { requireTool } from "./_helpers/tools.ts";
import { REPO_ROOT, startEdgemuxCli } from "./_helpers/edgemux_cli.ts";
import { startProcess } from "./_helpers/process.ts";
import denoJson from "../deno.json" with { type: "json" };
import { createHash } from "node:crypto";

/** Node's TLS under Deno keeps handles that outlive a test; the tests stop what they start. */
const acmeTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });

interface Setup {
  pebble: Pebble;
  httpPort: number;
  tlsPort: number;
  state: string;
  root: string;
  dir: string;
}

function acmeYaml(
  s: Setup,
  opts: { challenges: string; routes: string; backends: string; extra?: string },
): string {
  return `version: 1
certificates:
  acme:
    email: admin@acme.test
    directory: "${s.pebble.directoryUrl}"
    ca: "${s.pebble.caFile}"
    challenges: ${opts.challenges}
    state_directory: "${s.state}"
    retry_interval: 300ms
${opts.extra ?? ""}
backends:
${opts.backends}
listeners:
  http:
    bind: "127.0.0.1:${s.httpPort}"
    routes:
      - redirect: { https_port: ${s.tlsPort} }
  https:
    bind: "127.0.0.1:${s.tlsPort}"
    routes:
${opts.routes}
`;
}

/** The leaf certificate a client gets for `name` through `port`. */
async function servedCertificate(port: number, name: string): Promise<X509Certificate> {
  const { connect } = await import("node:tls");
  return await new Promise<X509Certificate>((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername: name,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    }, () => {
      const peer = socket.getPeerX509Certificate();
      socket.destroy();
      if (peer === undefined) reject(new Error("no peer certificate"));
      else resolve(peer);
    });
    socket.on("error", reject);
  });
}

async function waitFor<T>(
  what: string,
  probe: () => T | null | Promise<T | null>,
  timeoutMs = 30_000,
  explain: () => string = () => "",
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== null) return got;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${explain()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What to show when a test times out: edgemux's view of its names, and pebble's log. */
function diagnose(proxy: TestProxy, pebble: Pebble): string {
  return `acme status: ${JSON.stringify(proxy.proxy.status().acme, null, 2)}\n` +
    `records: ${JSON.stringify(proxy.records.slice(-5))}\n` +
    `pebble:\n${pebble.output().split("\n").slice(-25).join("\n")}`;
}

async function withPebble(
  fn: (s: Setup) => Promise<void>,
  validitySeconds?: number,
  blocklist?: string[],
): Promise<void> {
  await using dir = await makeTempDir("edgemux-acme-");
  const httpPort = pickFreePort();
  const tlsPort = pickFreePort();
  await using pebble = await startPebble({
    dir: dir.path,
    httpPort,
    tlsPort,
    validitySeconds,
    blocklist,
  });
  const root = `${dir.path}/issuing-root.pem`;
  await Deno.writeTextFile(root, await pebble.issuingRoot());
  await fn({ pebble, httpPort, tlsPort, state: `${dir.path}/state`, root, dir: dir.path });
}

function issuedBy(cert: X509Certificate, rootPem: string): boolean {
  return cert.issuer.includes("Pebble Intermediate CA") && rootPem.includes("BEGIN CERTIFICATE");
}

async function curlName(s: Setup, name: string, path = "/") {
  return await curl([
    "--http1.1",
    "--cacert",
    s.root,
    "--resolve",
    `${name}:${s.tlsPort}:127.0.0.1`,
    `https://${name}:${s.tlsPort}${path}`,
  ]);
}

acmeTest(
  "HTTP-01: edgemux orders, answers the challenge itself, and serves the certificate without a restart",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      await using proxy: TestProxy = await startEdgemux(acmeYaml(s, {
        challenges: "[http-01]",
        backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
        routes: `      - sni: app.acme.test
        edge: app`,
      }));
      // Before issuance, the development certificate stands in.
      const issued = await waitFor("the issued certificate", async () => {
        const cert = await servedCertificate(s.tlsPort, "app.acme.test");
        return cert.issuer.includes("Pebble") ? cert : null;
      });
      ok(issuedBy(issued, await Deno.readTextFile(s.root)), issued.issuer);
      equal(issued.subjectAltName, "DNS:app.acme.test");
      const res = await curlName(s, "app.acme.test", "/hello");
      equal(res.code, 0, res.errorMessage);
      equal(res.body, "backend app GET /hello\n");
      // A browser: Chromium trusts only the issued certificate's key (its SPKI pin), so the
      // page loads only if edgemux serves that certificate.
      const dom = await chromiumDom(`https://app.acme.test:${s.tlsPort}/browser`, issued);
      ok(dom.includes("backend app GET /browser"), dom);
      // The challenge went through the redirect listener, answered by edgemux.
      const answered = await proxy.waitForRecord((r) =>
        r.listener === "http" && (r.requests ?? 0) > 0
      );
      notEqual(answered.end, "redirected");
      // State: the key is private.
      const info = await Deno.stat(`${s.state}/certs/app.acme.test.pem`);
      equal(info.mode! & 0o777, 0o600);
      equal((await Deno.stat(`${s.state}/account.key`)).mode! & 0o777, 0o600);
      const status = proxy.proxy.status();
      const acme = status.acme?.find((a) => a.name === "app.acme.test");
      equal(acme?.state, "valid");
      equal(acme?.issued, 1);
      equal(acme?.lastError, null);
      ok(Date.parse(acme!.nextAttempt!) < Date.parse(acme!.notAfter!));
      // Visibility: the status page and /metrics say where the certificate came from.
      const served = status.certificates.find((c) => c.names.includes("app.acme.test"));
      equal(served?.source, "acme");
      const page = renderStatusPage(status);
      ok(page.includes("<h2>ACME</h2>") && page.includes("app.acme.test"), page);
      const metrics = renderPrometheus(proxy.proxy.metrics.registry.snapshot());
      ok(
        metrics.includes('edgemux_certificate_source{name="app.acme.test",source="acme"} 1'),
        metrics,
      );
      ok(metrics.includes('edgemux_acme_failures{name="app.acme.test"} 0'), metrics);
      ok(/edgemux_acme_next_attempt_timestamp_seconds\{name="app.acme.test"\} \d+/.test(metrics));
    });
  },
);

acmeTest(
  "TLS-ALPN-01 on a listener whose passthrough route keeps serving its backend's certificate",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      await using vault = await startTlsHttpBackend("vault", "vault");
      await using proxy: TestProxy = await startEdgemux(acmeYaml(s, {
        challenges: "[tls-alpn-01]",
        backends: `  app: { servers: ["127.0.0.1:${app.port}"] }
  vault: { servers: ["127.0.0.1:${vault.port}"] }`,
        routes: `      - name: vault
        sni: vault.example.test
        passthrough: vault
      - name: app
        sni: app.acme.test
        edge: app`,
      }));
      // Ordinary clients of the passthrough name, all through the validation.
      let passthroughOk = 0;
      const issued = await waitFor(
        "the issued certificate",
        async () => {
          const res = await curl([
            "--http1.1",
            "--cacert",
            certPath("ca"),
            "--resolve",
            `vault.example.test:${s.tlsPort}:127.0.0.1`,
            `https://vault.example.test:${s.tlsPort}/during`,
          ]);
          equal(res.code, 0, `passthrough failed during validation: ${res.errorMessage}`);
          equal(res.body, "backend vault GET /during\n");
          passthroughOk++;
          const cert = await servedCertificate(s.tlsPort, "app.acme.test");
          return cert.issuer.includes("Pebble") ? cert : null;
        },
        30_000,
        () => diagnose(proxy, s.pebble),
      );
      ok(passthroughOk > 0);
      equal(issued.subjectAltName, "DNS:app.acme.test");
      // The CA's validation connection was answered by edgemux, not routed.
      const validation = await proxy.waitForRecord((r) => r.route === "acme-tls-alpn-01");
      equal(validation.sni, "app.acme.test");
      equal(validation.end, "acme-tls-alpn-01");
      ok(validation.alpn.includes("acme-tls/1"));
      // Nothing for the passthrough name went anywhere but its backend.
      for (const r of proxy.records.filter((r) => r.sni === "vault.example.test")) {
        equal(r.route, "vault");
      }
      // edgemux orders only for names it terminates.
      const names = proxy.proxy.status().acme?.map((a) => a.name);
      equal(JSON.stringify(names), JSON.stringify(["app.acme.test"]));
      const res = await curlName(s, "app.acme.test", "/x");
      equal(res.code, 0, res.errorMessage);
      equal(res.body, "backend app GET /x\n");
    });
  },
);

/** Loads `url` in headless Chromium, trusting only `cert`'s key, and returns the page. */
async function chromiumDom(url: string, cert: X509Certificate): Promise<string> {
  const chromium = requireTool("chromium", "chromium");
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  const pin = createHash("sha256").update(spki).digest("base64");
  await using profile = await makeTempDir("edgemux-chromium-");
  const result = await run(chromium, [
    ...HEADLESS_CHROMIUM_FLAGS,
    "--host-resolver-rules=MAP *.acme.test 127.0.0.1",
    `--user-data-dir=${profile.path}`,
    `--ignore-certificate-errors-spki-list=${pin}`,
    "--dump-dom",
    url,
  ], { timeoutMs: 45_000 });
  equal(result.code, 0, `chromium failed:\n${result.stderr}`);
  return result.stdout;
}

/** The next message that is not a ping or pong (Deno's server pings idle sockets). */
async function nextText(socket: WebSocketClient): Promise<WebSocketMessage> {
  for (;;) {
    const m = await socket.receive(5000);
    if (m.kind !== "ping" && m.kind !== "pong") return m;
  }
}

/** How many orders pebble has taken so far, from its log. */
function orders(pebble: Pebble): number {
  return pebble.output().split("\n").filter((l) => l.includes("Added order")).length;
}

acmeTest(
  "restart with stored state: the stored certificate serves at once and no new order is placed",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      const yaml = acmeYaml(s, {
        challenges: "[http-01, tls-alpn-01]",
        backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
        routes: `      - sni: app.acme.test
        edge: app`,
      });
      let first: X509Certificate;
      {
        await using proxy = await startEdgemux(yaml);
        first = await waitFor(
          "the issued certificate",
          async () => {
            const cert = await servedCertificate(s.tlsPort, "app.acme.test");
            return cert.issuer.includes("Pebble") ? cert : null;
          },
          30_000,
          () => diagnose(proxy, s.pebble),
        );
      }
      const before = orders(s.pebble);
      equal(before, 1);
      await using again = await startEdgemux(yaml);
      // The very first handshake after the restart gets the stored certificate.
      const served = await servedCertificate(s.tlsPort, "app.acme.test");
      equal(served.fingerprint256, first.fingerprint256);
      await waitFor("the schedule to look at the stored certificate", () => {
        const a = again.proxy.status().acme?.[0];
        return a?.state === "valid" ? a : null;
      });
      equal(again.proxy.status().acme?.[0].issued, 0);
      equal(orders(s.pebble), before);
    });
  },
);

acmeTest(
  "two edgemux instances sharing the state directory place one order between them",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      const config = (http: number, tls: number) =>
        acmeYaml({ ...s, httpPort: http, tlsPort: tls }, {
          challenges: "[http-01]",
          backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
          routes: `      - sni: app.acme.test
        edge: app`,
        });
      // Only the first is where pebble validates; the second reads the challenge from the state
      // directory if it is the one that orders, and its certificate if it is not.
      const [a, b] = await Promise.all([
        startEdgemux(config(s.httpPort, s.tlsPort)),
        startEdgemux(config(pickFreePort(), pickFreePort())),
      ]);
      try {
        for (const p of [a, b]) {
          await waitFor(
            "the certificate in both",
            async () => {
              const cert = await servedCertificate(p.port("https"), "app.acme.test");
              return cert.issuer.includes("Pebble") ? cert : null;
            },
            30_000,
            () => diagnose(p, s.pebble),
          );
        }
        equal(orders(s.pebble), 1);
        const issued = [a, b].map((p) => p.proxy.status().acme?.[0].issued ?? 0);
        equal(issued[0] + issued[1], 1, JSON.stringify(issued));
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  },
);

acmeTest(
  "renewal of a short-lived certificate while a download and a WebSocket through the name go on",
  async () => {
    await withPebble(async (s) => {
      await using dl = startDownloadBackend();
      const ws = serveHttp((req) => {
        const { socket, response } = Deno.upgradeWebSocket(req);
        socket.onmessage = (e) => socket.send(e.data);
        return response;
      });
      try {
        await using proxy = await startEdgemux(acmeYaml(s, {
          challenges: "[tls-alpn-01]",
          backends: `  dl: { servers: ["127.0.0.1:${dl.port}"] }
  ws: { servers: ["127.0.0.1:${ws.port}"] }`,
          routes: `      - sni: app.acme.test
        edge:
          http:
            - path: /ws
              backend: ws
            - backend: dl`,
        }));
        const first = await waitFor(
          "the first certificate",
          async () => {
            const cert = await servedCertificate(s.tlsPort, "app.acme.test");
            return cert.issuer.includes("Pebble") ? cert : null;
          },
          30_000,
          () => diagnose(proxy, s.pebble),
        );
        const life = Date.parse(first.validTo) - Date.parse(first.validFrom);
        ok(life <= 60_000, `pebble issued a ${life} ms certificate`);
        const size = 4 * 1024 * 1024;
        const file = `${s.dir}/download.bin`;
        const download = new Deno.Command("curl", {
          args: [
            "-sS",
            "--http1.1",
            "--cacert",
            s.root,
            "--resolve",
            `app.acme.test:${s.tlsPort}:127.0.0.1`,
            "-o",
            file,
            `https://app.acme.test:${s.tlsPort}/download?id=long&bytes=${size}&hold=1048576`,
          ],
          stdout: "null",
          stderr: "piped",
        }).output();
        await dl.waitForSent("long", 1024 * 1024);
        await using socket = await openWebSocket({
          port: s.tlsPort,
          serverName: "app.acme.test",
          caCerts: [await Deno.readTextFile(s.root)],
          path: "/ws",
        });
        await socket.sendText("before");
        deepEqual(await nextText(socket), { kind: "text", text: "before" });
        const renewed = await waitFor(
          "the renewed certificate",
          async () => {
            const cert = await servedCertificate(s.tlsPort, "app.acme.test");
            return cert.fingerprint256 !== first.fingerprint256 ? cert : null;
          },
          60_000,
          () => diagnose(proxy, s.pebble),
        );
        ok(renewed.issuer.includes("Pebble"));
        ok(Date.parse(renewed.validTo) > Date.parse(first.validTo));
        // Both old connections go on after the swap.
        await socket.sendText("after");
        deepEqual(await nextText(socket), { kind: "text", text: "after" });
        dl.release("long");
        const done = await download;
        equal(done.code, 0, new TextDecoder().decode(done.stderr));
        const { createHash } = await import("node:crypto");
        const got = createHash("sha256").update(await Deno.readFile(file)).digest("hex");
        equal(got, patternSha256(size));
        ok((proxy.proxy.status().acme?.[0].issued ?? 0) >= 2);
      } finally {
        await ws.close();
      }
    }, 30);
  },
);

acmeTest(
  "the CA unreachable: the old certificate keeps serving, the status shows the error, retries back off",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      await using proxy = await startEdgemux(acmeYaml(s, {
        challenges: "[http-01]",
        backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
        routes: `      - sni: app.acme.test
        edge: app`,
      }));
      const first = await waitFor(
        "the first certificate",
        async () => {
          const cert = await servedCertificate(s.tlsPort, "app.acme.test");
          return cert.issuer.includes("Pebble") ? cert : null;
        },
        30_000,
        () => diagnose(proxy, s.pebble),
      );
      await s.pebble.stop();
      // Renewal is due at about two thirds of 30 s; the CA is gone by then.
      const failed = await waitFor(
        "failed renewals",
        () => {
          const a = proxy.proxy.status().acme?.[0];
          return a !== undefined && a.failures >= 3 ? a : null;
        },
        60_000,
        () => JSON.stringify(proxy.proxy.status().acme),
      );
      equal(failed.state, "failed");
      ok(failed.lastError !== null && failed.lastError !== "", JSON.stringify(failed));
      // Back-off: the next try is further away than the first retry interval.
      ok(Date.parse(failed.nextAttempt!) - Date.now() > 300, JSON.stringify(failed));
      const served = await servedCertificate(s.tlsPort, "app.acme.test");
      equal(served.fingerprint256, first.fingerprint256);
      const res = await curlName(s, "app.acme.test", "/still");
      equal(res.code, 0, res.errorMessage);
    }, 30);
  },
);

acmeTest(
  "the CA unreachable from the start: the development certificate serves, the error shows",
  async () => {
    await using dir = await makeTempDir("edgemux-acme-");
    await using app = await startHttpBackend("app");
    const closed = pickFreePort();
    await using proxy = await startEdgemux(`version: 1
certificates:
  acme:
    email: admin@acme.test
    directory: "https://localhost:${closed}/dir"
    state_directory: "${dir.path}/state"
    retry_interval: 200ms
backends:
  app: { servers: ["127.0.0.1:${app.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - sni: app.acme.test
        edge: app
`);
    const failed = await waitFor("failures", () => {
      const a = proxy.proxy.status().acme?.[0];
      return a !== undefined && a.failures >= 2 ? a : null;
    });
    match(failed.lastError ?? "", /ECONNREFUSED|refused|connect/i);
    const served = await servedCertificate(proxy.port("https"), "app.acme.test");
    ok(served.subject.includes("edgemux development certificate"), served.subject);
    const dev = proxy.proxy.status().certificates.find((c) => c.names.includes("app.acme.test"));
    equal(dev?.source, "development");
  },
);

acmeTest(
  "HTTP-01: edgemux's own tokens win over the acme_challenge backend, other tokens reach it",
  async () => {
    await using dir = await makeTempDir("edgemux-acme-");
    await using certbot = await startHttpBackend("certbot");
    await using app = await startHttpBackend("app");
    const state = `${dir.path}/state`;
    await using proxy = await startEdgemux(`version: 1
certificates:
  acme:
    email: admin@acme.test
    directory: "https://localhost:${pickFreePort()}/dir"
    state_directory: "${state}"
    retry_interval: 1h
backends:
  certbot: { servers: ["127.0.0.1:${certbot.port}"] }
  app: { servers: ["127.0.0.1:${app.port}"] }
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { acme_challenge: certbot }
  https:
    bind: "127.0.0.1:0"
    routes:
      - sni: app.acme.test
        edge: app
`);
    // A token placed by another worker or instance sharing the state directory.
    const token = "edgemux-own-token_0123456789";
    await Deno.mkdir(`${state}/challenges/http-01`, { recursive: true });
    await Deno.writeTextFile(`${state}/challenges/http-01/${token}`, `${token}.thumbprint`);
    const base = `http://127.0.0.1:${proxy.port("http")}/.well-known/acme-challenge/`;
    const own = await curl(["-H", "Host: app.acme.test", base + token]);
    equal(own.status, 200);
    equal(own.body, `${token}.thumbprint`);
    equal(certbot.requests.length, 0);
    const other = await curl(["-H", "Host: other.acme.test", base + "certbot-token-abcdefghijkl"]);
    equal(
      other.body,
      "backend certbot GET /.well-known/acme-challenge/certbot-token-abcdefghijkl\n",
    );
    equal(certbot.requests.length, 1);
    // Everything else is still redirected.
    const page = await curl([
      "-H",
      "Host: app.acme.test",
      `http://127.0.0.1:${proxy.port("http")}/x`,
    ]);
    equal(page.status, 308);
  },
);

acmeTest(
  "workers: 2 share the state directory: one order, and both workers serve the certificate",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      const file = `${s.dir}/edgemux.yaml`;
      await Deno.writeTextFile(
        file,
        acmeYaml(s, {
          challenges: "[tls-alpn-01]",
          backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
          routes: `      - sni: app.acme.test
        edge: app`,
          extra: 'workers: 2\nadmin: { bind: "127.0.0.1:0" }',
        }),
      );
      await using cli = await startEdgemuxCli(file, { startTimeoutMs: 30_000 });
      // Many connections, so both workers (SO_REUSEPORT) are asked; every one gets the
      // issued certificate once both have it.
      await waitFor(
        "the issued certificate from every worker",
        async () => {
          for (let i = 0; i < 8; i++) {
            const cert = await servedCertificate(s.tlsPort, "app.acme.test");
            if (!cert.issuer.includes("Pebble")) return null;
          }
          return true;
        },
        40_000,
        () => cli.output().split("\n").slice(-30).join("\n"),
      );
      equal(orders(s.pebble), 1, s.pebble.output());
      const status = await (await fetch(`${cli.adminUrl}/status.json`)).json();
      equal(status.acme?.[0]?.state, "valid", JSON.stringify(status.acme));
      equal(status.acme?.[0]?.issued, 1, JSON.stringify(status.acme));
    });
  },
);

acmeTest(
  "the CA refusing a name: its reason shows, the other names are issued, retries back off",
  async () => {
    await withPebble(
      async (s) => {
        await using app = await startHttpBackend("app");
        await using proxy = await startEdgemux(acmeYaml(s, {
          challenges: "[http-01]",
          backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
          routes: `      - sni: [app.acme.test, blocked.acme.test]
        edge: app`,
        }));
        const refused = await waitFor(
          "the refusal",
          () => {
            const a = proxy.proxy.status().acme?.find((x) => x.name === "blocked.acme.test");
            return a !== undefined && a.failures >= 2 ? a : null;
          },
          30_000,
          () => diagnose(proxy, s.pebble),
        );
        equal(refused.state, "failed");
        // The CA's own words.
        match(refused.lastError ?? "", /blocked|forbidden|policy/i);
        const blocked = await servedCertificate(s.tlsPort, "blocked.acme.test");
        ok(blocked.subject.includes("edgemux development certificate"), blocked.subject);
        const good = await waitFor(
          "the other name's certificate",
          async () => {
            const cert = await servedCertificate(s.tlsPort, "app.acme.test");
            return cert.issuer.includes("Pebble") ? cert : null;
          },
          30_000,
          () => diagnose(proxy, s.pebble),
        );
        equal(good.subjectAltName, "DNS:app.acme.test");
        // Back-off: with a 300 ms base, the gap before the next try has grown past the base.
        const later = proxy.proxy.status().acme!.find((x) => x.name === "blocked.acme.test")!;
        const failures = later.failures;
        await new Promise((r) => setTimeout(r, 1500));
        const after = proxy.proxy.status().acme!.find((x) => x.name === "blocked.acme.test")!;
        // Doubling from 300 ms: in 1.5 s at most three more attempts, never one per tick.
        ok(after.failures - failures <= 3, `${failures} -> ${after.failures}`);
      },
      undefined,
      ["blocked.acme.test"],
    );
  },
);

acmeTest(
  "with the compiled binary's permissions (four environment variables, writes only to the state directory)",
  async () => {
    await withPebble(async (s) => {
      await using app = await startHttpBackend("app");
      const file = `${s.dir}/edgemux.yaml`;
      await Deno.writeTextFile(
        file,
        acmeYaml(s, {
          challenges: "[tls-alpn-01]",
          backends: `  app: { servers: ["127.0.0.1:${app.port}"] }`,
          routes: `      - sni: app.acme.test
        edge: app`,
        }),
      );
      // The compile task's own permission flags, with the state directory as the writable one.
      const flags = (denoJson.tasks.compile as string).split(/\s+/)
        .filter((w) => /^--(allow|deny)-[a-z]+(=.*)?$/.test(w) || w === "--no-prompt")
        .filter((w) => !w.startsWith("--allow-run"))
        .map((w) => w.startsWith("--allow-write=") ? `--allow-write=${s.state}` : w);
      ok(flags.some((f) => f.startsWith("--allow-env=")), flags.join(" "));
      await using edgemux = startProcess(Deno.execPath(), [
        "run",
        ...flags,
        "main.ts",
        "run",
        "-c",
        file,
        "--log-format",
        "text",
      ], { cwd: REPO_ROOT });
      await edgemux.waitForOutput("certificate issued", 30_000);
      const cert = await servedCertificate(s.tlsPort, "app.acme.test");
      ok(cert.issuer.includes("Pebble"), cert.issuer);
      ok(!/NotCapable|Requires env access/.test(edgemux.output()), edgemux.output());
    });
  },
);
