/**
 * PROXY protocol headers as servers behind edgemux receive them: a real nginx that needs the
 * header to answer, and the tests' own strict parser (written apart from edgemux's encoder), for
 * IPv4 and IPv6 clients through forward and passthrough routes.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { buildClientHello } from "../proxy/_testing/hello_builder.ts";
import { startProxyProtocolBackend } from "./_helpers/backends.ts";
import { readAll, startEdgemux, writeAll } from "./_helpers/edgemux.ts";
import { startNginxProxyProtocolBackend } from "./_helpers/nginx.ts";
import { run } from "./_helpers/process.ts";
import { requireTool } from "./_helpers/tools.ts";

const curlBin = requireTool("curl", "curl");
const HELLO = buildClientHello({ sni: "a.example.test" });

/** Sends a ClientHello and returns everything the server answers until it closes. */
async function sendHello(
  hostname: string,
  port: number,
): Promise<{ reply: string; local: Deno.NetAddr }> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, HELLO);
    const reply = new TextDecoder().decode(await readAll(conn));
    return { reply, local: conn.localAddr as Deno.NetAddr };
  } finally {
    conn.close();
  }
}

function startsWithHello(payload: Uint8Array): boolean {
  return payload.length >= HELLO.length && HELLO.every((b, i) => payload[i] === b);
}

/** The port of an access record's `client` field (`1.2.3.4:5` or `[::1]:5`). */
function clientPort(client: string): number {
  return Number(client.slice(client.lastIndexOf(":") + 1));
}

/**
 * A PROXY protocol backend named `name`, behind two passthrough listeners bound to `host` port
 * 0 for a.example.test: `<prefix>1` sends v1 headers, `<prefix>2` v2.
 */
async function startPassthroughPair(name: string, prefix: string, host: string) {
  const backend = await startProxyProtocolBackend(name, { firstByteTimeoutMs: 2000 });
  try {
    const edgemux = await startEdgemux(`
version: 1
backends:
  pp-v1: { servers: ["127.0.0.1:${backend.port}"], proxy_protocol: v1 }
  pp-v2: { servers: ["127.0.0.1:${backend.port}"], proxy_protocol: v2 }
listeners:
  ${prefix}1:
    bind: "${host}:0"
    routes:
      - { sni: a.example.test, passthrough: pp-v1 }
  ${prefix}2:
    bind: "${host}:0"
    routes:
      - { sni: a.example.test, passthrough: pp-v2 }
`);
    return {
      backend,
      edgemux,
      async [Symbol.asyncDispose]() {
        await edgemux.stop();
        await backend.close();
      },
    };
  } catch (e) {
    await backend.close();
    throw e;
  }
}

Deno.test("nginx behind a forward sees curl's own address and port in v2 and v1 headers", async (t) => {
  await using nginx = await startNginxProxyProtocolBackend();
  await using edgemux = await startEdgemux(`
version: 1
backends:
  nginx-v2: { servers: ["127.0.0.1:${nginx.port}"], proxy_protocol: v2 }
  nginx-v1: { servers: ["127.0.0.1:${nginx.port}"], proxy_protocol: v1 }
listeners:
  pp2:
    bind: "127.0.0.1:0"
    routes:
      - { name: to-nginx-v2, forward: nginx-v2 }
  pp1:
    bind: "127.0.0.1:0"
    routes:
      - { name: to-nginx-v1, forward: nginx-v1 }
`);

  for (const version of ["v2", "v1"] as const) {
    await t.step(`proxy_protocol: ${version}`, async () => {
      const listener = `pp${version.slice(1)}`;
      const port = edgemux.port(listener);
      // curl prints its own source port after the body, so the test knows which port to expect.
      const r = await run(curlBin, [
        "-sS",
        "--http1.1",
        "-w",
        "\n%{local_ip} %{local_port}",
        `http://127.0.0.1:${port}/`,
      ]);
      equal(r.code, 0, `curl failed: ${r.stderr}\nnginx:\n${nginx.output()}`);
      const [body, local] = r.stdout.split("\n").filter((line) => line !== "");
      const [localIp, localPort] = local.split(" ");
      equal(localIp, "127.0.0.1");
      equal(body, `127.0.0.1:${localPort}`, "nginx reports the address the header claimed");

      const rec = await edgemux.waitForRecord((x) => x.listener === listener);
      equal(rec.client, `127.0.0.1:${localPort}`);
      equal(clientPort(rec.client), Number(body.split(":")[1]));
      equal(rec.route, `to-nginx-${version}`);
      ok(["client-closed", "upstream-closed"].includes(rec.end), `end ${rec.end} (${rec.detail})`);
    });
  }
});

Deno.test("passthrough sends v1 and v2 headers with the client as src and the listener as dst", async (t) => {
  await using pair = await startPassthroughPair("pp", "tls", "127.0.0.1");
  const { backend, edgemux } = pair;

  for (const version of ["v1", "v2"] as const) {
    await t.step(`proxy_protocol: ${version}`, async () => {
      const listener = `tls${version.slice(1)}`;
      const port = edgemux.port(listener);
      const { reply, local } = await sendHello("127.0.0.1", port);
      equal(
        reply,
        `pp proxy=${version} src=127.0.0.1:${local.port} dst=127.0.0.1:${port}\n`,
      );
      const seen = backend.records.at(-1)!;
      equal(seen.header?.protocol, "TCP4");
      equal(seen.header?.command, "proxy");
      deepEqual(seen.header?.tlvs, []);
      ok(startsWithHello(seen.payload), "the ClientHello follows the header unchanged");

      const rec = await edgemux.waitForRecord((x) => x.listener === listener);
      equal(rec.sni, "a.example.test");
      equal(rec.protocol, "tls");
      equal(rec.client, `127.0.0.1:${local.port}`);
      equal(rec.up, HELLO.length, "the header is not counted as client bytes");
      equal(rec.down, reply.length);
    });
  }
});

Deno.test("an IPv6 client on a [::1] listener gets a TCP6 / AF_INET6 header", async (t) => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch (e) {
    throw new Error(
      `this test needs the IPv6 loopback address ::1, which cannot be bound here (${e}). ` +
        "Enable IPv6 on lo (sysctl -w net.ipv6.conf.lo.disable_ipv6=0) or run where it is on.",
    );
  }
  await using pair = await startPassthroughPair("pp6", "six", "[::1]");
  const { backend, edgemux } = pair;

  for (const version of ["v1", "v2"] as const) {
    await t.step(`proxy_protocol: ${version}`, async () => {
      const listener = `six${version.slice(1)}`;
      const port = edgemux.port(listener);
      const { reply, local } = await sendHello("::1", port);
      equal(local.hostname, "::1");
      equal(reply, `pp6 proxy=${version} src=[::1]:${local.port} dst=[::1]:${port}\n`);
      const seen = backend.records.at(-1)!;
      // v1 names the family TCP6; the parser reports v2's AF_INET6 + STREAM byte as TCP6 too.
      equal(seen.header?.protocol, "TCP6");
      deepEqual(seen.header?.source, { address: "::1", port: local.port });
      deepEqual(seen.header?.destination, { address: "::1", port });
      ok(startsWithHello(seen.payload), "the ClientHello follows the header unchanged");
      if (version === "v2") {
        // The header's own length says exactly two IPv6 addresses and two ports, no TLVs.
        equal(seen.header?.length, 16 + 36);
      }
      const rec = await edgemux.waitForRecord((x) => x.listener === listener);
      equal(rec.client, `[::1]:${local.port}`);
    });
  }
});

Deno.test("an IPv4 client seen through an IPv6 socket (IPv4-mapped) still gets a TCP4 header", async (t) => {
  // A dual-stack [::] bind reports IPv4 peers as ::ffff:a.b.c.d. Binding the mapped loopback
  // address gives the same socket family while staying on loopback.
  await using pair = await startPassthroughPair("mapped", "mapped", "[::ffff:127.0.0.1]");
  const { backend, edgemux } = pair;

  for (const version of ["v1", "v2"] as const) {
    await t.step(`proxy_protocol: ${version}`, async () => {
      const listener = `mapped${version.slice(1)}`;
      const port = edgemux.port(listener);
      const { reply, local } = await sendHello("127.0.0.1", port);
      equal(reply, `mapped proxy=${version} src=127.0.0.1:${local.port} dst=127.0.0.1:${port}\n`);
      equal(backend.records.at(-1)!.header?.protocol, "TCP4");
      const rec = await edgemux.waitForRecord((x) => x.listener === listener);
      equal(rec.client, `127.0.0.1:${local.port}`);
    });
  }
});

Deno.test("proxy_protocol: off sends no header, only the client's bytes", async () => {
  await using backend = await startProxyProtocolBackend("plain", { firstByteTimeoutMs: 2000 });
  await using edgemux = await startEdgemux(`
version: 1
backends:
  plain: { servers: ["127.0.0.1:${backend.port}"], proxy_protocol: off }
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { sni: a.example.test, passthrough: plain }
`);
  const { reply } = await sendHello("127.0.0.1", edgemux.port("tls"));
  // Without a header the backend reports the real socket: edgemux's upstream side.
  match(reply, /^plain proxy=none src=127\.0\.0\.1:\d+ dst=127\.0\.0\.1:\d+\n$/);
  const seen = backend.records.at(-1)!;
  equal(seen.version, "none");
  equal(seen.header, null);
  ok(startsWithHello(seen.payload), "the backend's first bytes are the ClientHello");
});
