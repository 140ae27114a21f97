/**
 * Active health checks against real servers on loopback: probe() for each check type, and
 * HealthChecker taking a server out of rotation after `fall` failed probes and back after
 * `rise` good ones. The checker tests run with the op and resource sanitizers on, so a timer or
 * socket left behind by stop() fails them.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import type { BackendConfig, HealthCheckConfig } from "../../config/types.ts";
import { readCert, readKey } from "../../tests/_helpers/certs.ts";
import {
  startStubHttp,
  startTaggedEcho,
  type StubReply,
} from "../../tests/_helpers/stub_servers.ts";
import type { TlsDialOptions } from "../_deno_internals.ts";
import { parseBackendConfig } from "../_testing/backend_config.ts";
import { Backend, type ServerState } from "./backend.ts";
import { HealthChecker, probe } from "./health.ts";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/**
 * Backend `b` with `servers`, a `health_check:` block (YAML flow map) and optionally a
 * `passive_health:` block, parsed for real.
 */
function backendConfig(servers: number[], healthCheck: string, passive?: string): BackendConfig {
  const lines = [
    `servers: [${servers.map((p) => `"127.0.0.1:${p}"`).join(", ")}]`,
    `health_check: ${healthCheck}`,
  ];
  if (passive !== undefined) lines.push(`passive_health: ${passive}`);
  return parseBackendConfig(lines.join("\n"), "health_test.yaml");
}

function checkOf(config: BackendConfig): HealthCheckConfig {
  if (config.healthCheck === null) throw new Error("the backend has no health check");
  return config.healthCheck;
}

/** A port nobody listens on (bound, read back, released). */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Resolves once `condition()` holds, polling every 10 ms; rejects after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A TLS server on loopback that completes handshakes and closes. */
function startTlsServer(certName: "backend-internal" | "untrusted"): AsyncDisposable & {
  port: number;
} {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCert(certName),
    key: readKey(certName),
  });
  const tasks = new Set<Promise<void>>();
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        const task = conn.handshake().then(() => {}, () => {}).finally(() => {
          try {
            conn.close();
          } catch {
            // Closed by the client first.
          }
          tasks.delete(task);
        });
        tasks.add(task);
      }
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      await Promise.all(tasks);
    },
  };
}

const TLS_INTERNAL: TlsDialOptions = {
  caCerts: [readCert("ca")],
  serverName: "backend.internal",
  cert: undefined,
  key: undefined,
};

const sanitized = { sanitizeOps: true, sanitizeResources: true };

// ---------------------------------------------------------------------------------------------
// probe(): tcp
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "probe() with a tcp check succeeds against a listening server",
  ...sanitized,
  async fn() {
    await using echo = startTaggedEcho("echo");
    const config = backendConfig([echo.port], "{ type: tcp, interval: 1s, timeout: 500ms }");
    const backend = new Backend(config);
    deepEqual(await probe(backend.servers[0], checkOf(config), null), { ok: true });
    // The probe connected and went away.
    await waitFor("the probe's connection", () => echo.connections === 1, 2000);
  },
});

Deno.test({
  name: "probe() with a tcp check fails with the reason when the port refuses",
  ...sanitized,
  async fn() {
    const config = backendConfig([closedPort()], "{ type: tcp, interval: 1s, timeout: 500ms }");
    const backend = new Backend(config);
    const result = await probe(backend.servers[0], checkOf(config), null);
    deepEqual(result, { ok: false, reason: "connection refused" });
  },
});

// ---------------------------------------------------------------------------------------------
// probe(): tls
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "probe() with a tls check succeeds when the server's certificate verifies",
  ...sanitized,
  async fn() {
    await using server = startTlsServer("backend-internal");
    const config = backendConfig(
      [server.port],
      "{ type: tls, interval: 1s, timeout: 900ms, ca: testdata/certs/ca.pem, server_name: backend.internal }",
    );
    const backend = new Backend(config);
    deepEqual(await probe(backend.servers[0], checkOf(config), TLS_INTERNAL), { ok: true });
  },
});

// The two tests below check the verdict only; that a failed handshake leaves nothing open is
// the next test's subject.
Deno.test({
  name: "probe() with a tls check fails when the certificate comes from an untrusted CA",
  sanitizeOps: true,
  sanitizeResources: false,
  async fn() {
    await using server = startTlsServer("untrusted");
    const config = backendConfig([server.port], "{ type: tls, interval: 1s, timeout: 900ms }");
    const backend = new Backend(config);
    const result = await probe(backend.servers[0], checkOf(config), TLS_INTERNAL);
    ok(!result.ok, "an untrusted certificate passed the check");
    ok(/certificate|issuer/i.test(result.reason), `reason: ${result.reason}`);
  },
});

Deno.test({
  name: "probe() with a tls check fails when the certificate is for another name",
  sanitizeOps: true,
  sanitizeResources: false,
  async fn() {
    await using server = startTlsServer("backend-internal");
    const config = backendConfig([server.port], "{ type: tls, interval: 1s, timeout: 900ms }");
    const backend = new Backend(config);
    const result = await probe(backend.servers[0], checkOf(config), {
      ...TLS_INTERNAL,
      serverName: "vault.example.test",
    });
    ok(!result.ok, "a certificate for backend.internal passed as vault.example.test");
    ok(/certificate|name/i.test(result.reason), `reason: ${result.reason}`);
  },
});

/** Open file descriptors of this process (Linux). */
function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test({
  name: "probe() with a failing tls check closes its connection",
  ...sanitized,
  async fn() {
    const check = checkOf(backendConfig([1], "{ type: tls, interval: 1s, timeout: 900ms }"));
    const failingProbes = async (n: number) => {
      await using server = startTlsServer("untrusted");
      const backend = new Backend(backendConfig([server.port], "{ type: tls }"));
      for (let i = 0; i < n; i++) {
        equal((await probe(backend.servers[0], check, TLS_INTERNAL)).ok, false);
      }
    };
    // One round first, so that whatever is opened once per process is open already.
    await failingProbes(1);
    const before = openFds();
    await failingProbes(20);
    const leaked = openFds() - before;
    // A health check runs every interval for as long as the certificate stays wrong: a
    // descriptor per failed probe runs the process out of them.
    ok(leaked <= 2, `20 failed TLS probes left ${leaked} more file descriptors open`);
  },
});

// ---------------------------------------------------------------------------------------------
// probe(): http
// ---------------------------------------------------------------------------------------------

/** Probes a stub HTTP server answering every request with `reply`, with `check` (flow map). */
async function probeHttp(reply: StubReply, check: string) {
  await using stub = startStubHttp("stub", () => reply);
  const config = backendConfig([stub.port], check);
  const backend = new Backend(config);
  const result = await probe(backend.servers[0], checkOf(config), null);
  return { result, requests: [...stub.requests], label: backend.servers[0].config.label };
}

Deno.test({
  name: "probe() with an http check sends the configured request and accepts the expected status",
  ...sanitized,
  async fn() {
    const { result, requests, label } = await probeHttp(
      { status: 200, body: "fine\n" },
      "{ type: http, interval: 1s, timeout: 500ms, path: /healthz, expect_status: 200 }",
    );
    deepEqual(result, { ok: true });
    equal(requests.length, 1);
    equal(requests[0].method, "GET");
    equal(requests[0].path, "/healthz");
    equal(requests[0].headers["host"], label, "Host defaults to the server's address");
    equal(requests[0].headers["user-agent"], "edgemux-health-check");
  },
});

Deno.test({
  name: "probe() with an http check sends the configured method and Host",
  ...sanitized,
  async fn() {
    const { result, requests } = await probeHttp(
      { status: 200 },
      "{ type: http, interval: 1s, timeout: 500ms, method: HEAD, host: app.internal }",
    );
    deepEqual(result, { ok: true });
    equal(requests[0].method, "HEAD");
    equal(requests[0].headers["host"], "app.internal");
  },
});

Deno.test({
  name: "probe() with an http check expecting 200 fails on a 500 and says which status came",
  ...sanitized,
  async fn() {
    const { result } = await probeHttp(
      { status: 500, body: "broken\n" },
      "{ type: http, interval: 1s, timeout: 500ms, expect_status: 200 }",
    );
    ok(!result.ok);
    ok(result.reason.includes("500"), `reason: ${result.reason}`);
    equal(result.reason, "status 500, expected 200-200");
  },
});

Deno.test({
  name: "probe() with an http check expecting 2xx accepts a 204 and refuses a 301",
  ...sanitized,
  async fn() {
    const check = '{ type: http, interval: 1s, timeout: 500ms, expect_status: "2xx" }';
    deepEqual((await probeHttp({ status: 204 }, check)).result, { ok: true });
    const moved = await probeHttp({ status: 301, headers: { location: "/x" } }, check);
    deepEqual(moved.result, { ok: false, reason: "status 301, expected 200-299" });
  },
});

Deno.test({
  name: "probe() with an http check by default accepts 200-399",
  ...sanitized,
  async fn() {
    const check = "{ type: http, interval: 1s, timeout: 500ms }";
    deepEqual((await probeHttp({ status: 302 }, check)).result, { ok: true });
    equal((await probeHttp({ status: 404 }, check)).result.ok, false);
  },
});

Deno.test({
  name: "probe() with an http check times out on a server that never answers",
  ...sanitized,
  async fn() {
    const started = performance.now();
    const { result } = await probeHttp("hang", "{ type: http, interval: 1s, timeout: 200ms }");
    const took = performance.now() - started;
    deepEqual(result, { ok: false, reason: "no response within the check timeout" });
    ok(took >= 190 && took < 1000, `the probe took ${Math.round(took)} ms for a 200 ms timeout`);
  },
});

Deno.test({
  name: "probe() with an http check fails when the server closes without an answer",
  ...sanitized,
  async fn() {
    const { result } = await probeHttp("close", "{ type: http, interval: 1s, timeout: 500ms }");
    deepEqual(result, { ok: false, reason: "connection closed before a response" });
  },
});

Deno.test({
  name: "probe() with an http check over TLS talks HTTP inside the TLS connection",
  ...sanitized,
  async fn() {
    const cert = readCert("backend-internal");
    const key = readKey("backend-internal");
    const abort = new AbortController();
    const seen: string[] = [];
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
      signal: abort.signal,
      onListen: () => {},
      handler: (req) => {
        seen.push(new URL(req.url).pathname);
        return new Response(null, { status: 204 });
      },
    });
    try {
      const config = backendConfig(
        [server.addr.port],
        '{ type: http, interval: 1s, timeout: 900ms, path: /ready, expect_status: "2xx" }',
      );
      const backend = new Backend(config);
      deepEqual(await probe(backend.servers[0], checkOf(config), TLS_INTERNAL), { ok: true });
      deepEqual(seen, ["/ready"]);
    } finally {
      abort.abort();
      await server.finished;
    }
  },
});

// ---------------------------------------------------------------------------------------------
// HealthChecker
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "HealthChecker takes a dead server down after `fall` probes and back after `rise`",
  ...sanitized,
  async fn() {
    await using dying = startTaggedEcho("dying");
    await using steady = startTaggedEcho("steady");
    const config = backendConfig(
      [dying.port, steady.port],
      "{ type: tcp, interval: 100ms, timeout: 50ms, fall: 2, rise: 2 }",
    );
    const backend = new Backend(config);
    const [s1, s2] = backend.servers;
    const checker = new HealthChecker(backend, checkOf(config), null);
    checker.start();
    try {
      // The first round runs at once, then one every 100 ms.
      await waitFor("three probes of the dying server", () => dying.connections >= 3, 1000);
      equal(s1.checkedDown, false);

      await dying.stop();
      const killed = performance.now();
      await waitFor("the dead server taken down", () => s1.checkedDown, 1000);
      const downAfter = performance.now() - killed;
      // Two failed probes 100 ms apart: more than one interval, at most two plus slack.
      ok(downAfter >= 90 && downAfter <= 500, `taken down ${Math.round(downAfter)} ms after`);
      ok(s1.reason?.includes("connection refused"), `reason: ${s1.reason}`);
      equal(backend.pick(), s2, "traffic goes to the other server");
      equal(s2.checkedDown, false);

      dying.start();
      const restarted = performance.now();
      await waitFor("the restarted server brought back", () => !s1.checkedDown, 1000);
      const upAfter = performance.now() - restarted;
      ok(upAfter >= 90 && upAfter <= 500, `brought back ${Math.round(upAfter)} ms after`);
      equal(s1.up(Date.now()), true);
    } finally {
      await checker.stop();
    }
    // Nothing runs after stop(): no new probe reaches the server.
    const probes = dying.connections;
    await new Promise((r) => setTimeout(r, 250));
    equal(dying.connections, probes);
  },
});

Deno.test({
  name: "HealthChecker needs `fall` failures in a row: alternating results never take it down",
  ...sanitized,
  async fn() {
    let n = 0;
    await using flaky = startStubHttp("flaky", () => ({ status: n++ % 2 === 0 ? 500 : 200 }));
    const config = backendConfig(
      [flaky.port],
      "{ type: http, interval: 100ms, timeout: 50ms, fall: 2, rise: 2, expect_status: 200 }",
    );
    const backend = new Backend(config);
    const checker = new HealthChecker(backend, checkOf(config), null);
    const seen: boolean[] = [];
    checker.start();
    try {
      for (let i = 1; i <= 6; i++) {
        await waitFor(`probe ${i}`, () => flaky.requests.length >= i, 1000);
        seen.push(backend.servers[0].checkedDown);
      }
    } finally {
      await checker.stop();
    }
    deepEqual(seen, [false, false, false, false, false, false]);
  },
});

Deno.test({
  name: "HealthChecker with an http check takes a server answering 500 down",
  ...sanitized,
  async fn() {
    await using broken = startStubHttp("broken", () => ({ status: 500 }));
    const config = backendConfig(
      [broken.port],
      "{ type: http, interval: 100ms, timeout: 50ms, fall: 2, rise: 1, expect_status: 200 }",
    );
    const backend = new Backend(config);
    const s: ServerState = backend.servers[0];
    const checker = new HealthChecker(backend, checkOf(config), null);
    checker.start();
    try {
      await waitFor("the server taken down", () => s.checkedDown, 1000);
      equal(broken.requests.length, 2, "exactly `fall` probes");
      equal(s.reason, "health check failed 2 times: status 500, expected 200-200");
      equal(backend.pick(), "all-down");
    } finally {
      await checker.stop();
    }
  },
});

Deno.test({
  name: "HealthChecker.stop() waits for a probe in flight and schedules nothing after it",
  ...sanitized,
  async fn() {
    await using silent = startStubHttp("silent", () => "hang");
    const config = backendConfig(
      [silent.port],
      "{ type: http, interval: 1s, timeout: 300ms, fall: 1 }",
    );
    const backend = new Backend(config);
    const checker = new HealthChecker(backend, checkOf(config), null);
    checker.start();
    await waitFor("the first probe", () => silent.requests.length === 1, 1000);
    const started = performance.now();
    await checker.stop();
    const took = performance.now() - started;
    ok(took < 600, `stop() took ${Math.round(took)} ms`);
    // A probe that ends after stop() changes nothing.
    equal(backend.servers[0].checkedDown, false);
  },
});

Deno.test({
  name: "HealthChecker brings back a server that passive health took out, once its checks pass",
  ...sanitized,
  async fn() {
    // Real traffic failed a few times (a quick restart, a full accept queue) and passive
    // health took the server out for its backoff; the active checks have passed all along.
    // PassiveHealthConfig.backoff promises that "active checks may bring it back sooner".
    await using echo = startTaggedEcho("echo");
    const config = backendConfig(
      [echo.port],
      "{ type: tcp, interval: 100ms, timeout: 50ms, fall: 2, rise: 2 }",
      "{ failures: 3, backoff: 1m }",
    );
    const backend = new Backend(config);
    const s = backend.servers[0];
    for (let i = 0; i < 3; i++) backend.connectFailed(s, "connection refused");
    equal(s.up(Date.now()), false);
    const checker = new HealthChecker(backend, checkOf(config), null);
    checker.start();
    try {
      // rise + 2 passing probes.
      await waitFor("four passing probes", () => echo.connections >= 4, 2000);
      ok(
        s.up(Date.now()),
        `${echo.connections} probes passed, yet the server stays down for another ${
          Math.round((s.passiveUntil - Date.now()) / 1000)
        } s of passive backoff`,
      );
    } finally {
      await checker.stop();
    }
  },
});
