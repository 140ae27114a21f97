/**
 * PROXY protocol headers received: edgemux behind a real HAProxy (`send-proxy-v2`) and a real
 * nginx (`proxy_protocol on`, v1) learns the client's address and uses it everywhere (access and
 * request records, X-Forwarded-For, PROXY headers sent onwards, per-client caps). Connections
 * from sources not in `accept_from` are refused, and so are trusted ones whose header is
 * missing, broken or late; a v2 LOCAL header (a health check) is served as the proxy itself.
 *
 * Clients use 127.0.0.2 as their source address (every 127.0.0.0/8 address is loopback on
 * Linux) while the proxies in front connect from 127.0.0.1, the one trusted source.
 */

import { equal, match, ok } from "node:assert/strict";
import { startHttpBackend, startProxyProtocolBackend } from "./_helpers/backends.ts";
import { certPath, EDGE_CERTIFICATES } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { startHaproxyTcp } from "./_helpers/haproxy.ts";
import { startNginxProxyProtocolSender } from "./_helpers/nginx.ts";
import { V2_SIGNATURE } from "./_helpers/proxy_protocol.ts";
import { startEdgemuxCli, waitForLogLines } from "./_helpers/edgemux_cli.ts";
import { connectFrom } from "./_helpers/source_address.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

const CLIENT = "127.0.0.2";

async function startBehindProxy() {
  const web = await startHttpBackend("web");
  const pp = await startProxyProtocolBackend("pp", { firstByteTimeoutMs: 2000 });
  const edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
limits: { per_client: { max_connections: 2 } }
backends:
  web: { servers: ["127.0.0.1:${web.port}"] }
  pp: { servers: ["127.0.0.1:${pp.port}"], proxy_protocol: v1 }
listeners:
  https:
    bind: "127.0.0.1:0"
    proxy_protocol: { accept_from: [127.0.0.1/32] }
    routes:
      - { name: app, sni: app.example.test, edge: web }
  tcp:
    bind: "127.0.0.1:0"
    proxy_protocol: { accept_from: ["127.0.0.1"], timeout: 400ms }
    routes:
      - { name: onwards, forward: pp }
`);
  return {
    web,
    pp,
    edgemux,
    async [Symbol.asyncDispose]() {
      await edgemux.stop();
      await web.close();
      await pp.close();
    },
  };
}

/** curl from 127.0.0.2 to https://app.example.test on `port`, trusting the test CA. */
function curlFromClient(port: number) {
  return curl([
    "--interface",
    CLIENT,
    "--cacert",
    certPath("ca"),
    "--resolve",
    `app.example.test:${port}:127.0.0.1`,
    `https://app.example.test:${port}/who`,
  ]);
}

/** The port of an access record's `client` (`127.0.0.2:5555`). */
function portOf(client: string): number {
  return Number(client.slice(client.lastIndexOf(":") + 1));
}

/** A TCP exchange from 127.0.0.2 through `port`: what came back, and the local port used. */
async function tcpFromClient(port: number): Promise<{ reply: string; localPort: number }> {
  const conn = await connectFrom(CLIENT, port);
  await conn.write("ping");
  ok(await conn.waitForText("\n", 10_000), `no reply: ${JSON.stringify(conn.text())}`);
  ok(await conn.waitForClose(10_000));
  const reply = conn.text();
  conn.destroy();
  return { reply, localPort: conn.localPort };
}

async function checkClientIsSeen(
  t: Deno.TestContext,
  front: { https: number; tcp: number },
  env: Awaited<ReturnType<typeof startBehindProxy>>,
): Promise<void> {
  const edgemux: TestProxy = env.edgemux;
  await t.step("an edge route: records and X-Forwarded-For name the client", async () => {
    const r = await curlFromClient(front.https);
    equal(r.status, 200, r.body);
    const seen = env.web.requests.at(-1)!;
    equal(seen.headers["x-forwarded-for"], CLIENT);
    const request = await edgemux.waitForRequest((x) => x.path === "/who" && x.client === CLIENT);
    equal(request.status, 200);
    const conn = await edgemux.waitForRecord((x) => x.conn === request.conn);
    match(conn.client, /^127\.0\.0\.2:\d+$/);
    equal(conn.route, "app");
  });
  await t.step("a forward route: the PROXY header sent onwards names the client", async () => {
    const { reply, localPort } = await tcpFromClient(front.tcp);
    match(reply, new RegExp(`^pp proxy=v1 src=127\\.0\\.0\\.2:${localPort} `));
    const rec = await edgemux.waitForRecord((x) =>
      x.route === "onwards" && portOf(x.client) === localPort
    );
    equal(rec.client, `${CLIENT}:${localPort}`);
  });
}

Deno.test("behind HAProxy send-proxy-v2, the client's address is the one edgemux uses", async (t) => {
  await using env = await startBehindProxy();
  await using https = await startHaproxyTcp(env.edgemux.port("https"), "send-proxy-v2");
  // With `check-send-proxy`, HAProxy's health checks carry a v2 LOCAL header.
  await using tcp = await startHaproxyTcp(
    env.edgemux.port("tcp"),
    "send-proxy-v2 check check-send-proxy inter 200ms",
  );
  await checkClientIsSeen(t, { https: https.port, tcp: tcp.port }, env);
  await t.step("its health checks (v2 LOCAL) are served as HAProxy itself", async () => {
    // The only connection the test itself makes from 127.0.0.1 through HAProxy is the helper's
    // check that the port is open; every other one from 127.0.0.1 is a health check.
    const fromProxy = () =>
      env.edgemux.records.filter((x) => x.route === "onwards" && x.client.startsWith("127.0.0.1:"));
    const deadline = Date.now() + 15_000;
    while (fromProxy().length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ok(fromProxy().length >= 2, JSON.stringify(env.edgemux.records));
    const refused = env.edgemux.records.filter((x) => x.end.startsWith("proxy-"));
    equal(refused.length, 0, JSON.stringify(refused));
  });
});

Deno.test("behind nginx proxy_protocol on (v1), the client's address is the one edgemux uses", async (t) => {
  await using env = await startBehindProxy();
  await using https = await startNginxProxyProtocolSender(env.edgemux.port("https"));
  await using tcp = await startNginxProxyProtocolSender(env.edgemux.port("tcp"));
  await checkClientIsSeen(t, { https: https.port, tcp: tcp.port }, env);
});

/** Sends `bytes` from `source` straight to edgemux and waits for it to close the connection. */
async function sendRaw(source: string, port: number, bytes: string | Uint8Array) {
  const conn = await connectFrom(source, port);
  if (bytes.length > 0) await conn.write(bytes);
  const closed = await conn.waitForClose(5_000);
  const text = conn.text();
  conn.destroy();
  return { closed, text, localPort: conn.localPort };
}

Deno.test("PROXY headers are taken only from accept_from, and only whole and in time", async (t) => {
  await using env = await startBehindProxy();
  const { edgemux } = env;
  const tcp = edgemux.port("tcp");
  const header = (src: string, sport: number) => `PROXY TCP4 ${src} 127.0.0.1 ${sport} 443\r\n`;

  await t.step(
    "from an untrusted source, even with a header, the connection is refused",
    async () => {
      const r = await sendRaw(CLIENT, tcp, header("203.0.113.9", 4000) + "ping");
      ok(r.closed);
      equal(r.text, "", "nothing reached the backend");
      const rec = await edgemux.waitForRecord((x) => x.end === "proxy-untrusted");
      equal(rec.client, `${CLIENT}:${r.localPort}`);
      match(rec.detail ?? "", /127\.0\.0\.2 is not in proxy_protocol\.accept_from/);
      equal(env.pp.records.length, 0);
    },
  );

  await t.step("from the trusted source without a header: refused, with what it sent", async () => {
    const r = await sendRaw("127.0.0.1", tcp, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    equal(r.text, "");
    const rec = await edgemux.waitForRecord((x) => x.end === "proxy-header-missing");
    match(rec.detail ?? "", /no PROXY header: the connection starts with "GET \/ HTTP\/1\.1/);
  });

  await t.step("a broken header is refused with its reason", async () => {
    const cases: [string, RegExp][] = [
      ["PROXY TCP4 203.0.113.9 127.0.0.1 99999 443\r\nping", /v1 port "99999"/],
      ["PROXY TCP4 2001:db8::1 127.0.0.1 1 443\r\nping", /v1 address "2001:db8::1" is not an IPv4/],
      ["PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\nping", /v1 protocol "TCP5"/],
      ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\nping", /LF without CR/],
    ];
    for (const [bytes, reason] of cases) {
      await sendRaw("127.0.0.1", tcp, bytes);
      const rec = await edgemux.waitForRecord((x) =>
        x.end === "proxy-header-malformed" && reason.test(x.detail ?? "")
      );
      match(rec.client, /^127\.0\.0\.1:/);
    }
    // A v2 PROXY header for TCP over IPv4 whose length (4) leaves no room for the addresses.
    const v2 = new Uint8Array(20);
    v2.set(V2_SIGNATURE);
    v2.set([0x21, 0x11, 0, 4], V2_SIGNATURE.length);
    await sendRaw("127.0.0.1", tcp, v2);
    await edgemux.waitForRecord((x) => /too short for its IPv4 addresses/.test(x.detail ?? ""));
  });

  await t.step("a header not finished within the timeout is refused", async () => {
    const conn = await connectFrom("127.0.0.1", tcp);
    await conn.write("PROXY TCP4 1.2.3.4");
    ok(await conn.waitForClose(5_000), "closed at the header timeout");
    conn.destroy();
    const rec = await edgemux.waitForRecord((x) => x.end === "proxy-header-timeout");
    match(rec.detail ?? "", /^18 bytes in 400 ms/);
  });

  await t.step("a v2 LOCAL header (a health check) is served as the proxy itself", async () => {
    const local = new Uint8Array(16);
    local.set(V2_SIGNATURE);
    local.set([0x20, 0x00, 0, 0], V2_SIGNATURE.length);
    const conn = await connectFrom("127.0.0.1", tcp);
    await conn.write(local);
    await conn.write("ping");
    ok(await conn.waitForClose(5_000));
    conn.destroy();
    match(conn.text(), new RegExp(`^pp proxy=v1 src=127\\.0\\.0\\.1:${conn.localPort} `));
  });

  await t.step("per-client caps count the client a header names, not the proxy", async () => {
    // limits.per_client.max_connections is 2. Two connections for 10.9.9.9 wait in the https
    // listener's sniff (a header, then no ClientHello); a third from it is refused, while
    // another client behind the same proxy is still served.
    const https = edgemux.port("https");
    const held = [];
    for (let i = 0; i < 2; i++) {
      const c = await connectFrom("127.0.0.1", https);
      await c.write(header("10.9.9.9", 5000 + i));
      held.push(c);
    }
    await new Promise((r) => setTimeout(r, 300));
    const third = await sendRaw("127.0.0.1", https, header("10.9.9.9", 5002));
    ok(third.closed);
    const refused = await edgemux.waitForRecord((x) => x.end === "limit-client");
    equal(refused.client, "10.9.9.9:5002");
    const other = await sendRaw("127.0.0.1", tcp, header("10.9.9.10", 5003) + "ping");
    match(other.text, /^pp proxy=v1 src=10\.9\.9\.10:5003 /);
    for (const c of held) c.destroy();
  });
});

Deno.test("a refused PROXY header is logged at warning level and listed under recent problems", async () => {
  await using dir = await makeTempDir("edgemux-proxy-accept-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
log: { level: info, format: text, access: true }
admin: { bind: "127.0.0.1:0" }
backends:
  echo: { servers: ["127.0.0.1:9"] }
listeners:
  tcp:
    bind: "127.0.0.1:0"
    proxy_protocol: { accept_from: 127.0.0.1 }
    routes:
      - forward: echo
`,
  );
  await using cli = await startEdgemuxCli(file);
  const r = await sendRaw("127.0.0.1", cli.port("tcp"), "\x16\x03\x01\x00\x05hello");
  ok(r.closed);
  // Its level is checked below, in the status page's list (the log's text format may change).
  const [line] = await waitForLogLines(cli.output, "PROXY header refused", 1);
  equal(line.listener, "tcp");
  equal(line.end, "proxy-header-missing");
  match(line.detail, /a TLS handshake/);
  const status = await (await fetch(`${cli.adminUrl}/status.json`)).json() as {
    recentProblems: { level: string; message: string }[];
  };
  ok(
    status.recentProblems.some((p) =>
      p.level === "warning" && p.message === "PROXY header refused"
    ),
    JSON.stringify(status.recentProblems),
  );
});
