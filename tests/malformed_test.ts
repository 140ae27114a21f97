/**
 * Bad input on a TLS listener: every malformed, truncated, oversized or stalled connection is
 * closed on its own with a reason in its access record, and the listener keeps serving.
 */

import { equal, match, ok } from "node:assert/strict";
import { startTlsHttpBackend } from "./_helpers/backends.ts";
import { readAll, startEdgemux, writeAll } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { buildClientHello } from "../proxy/_testing/hello_builder.ts";

const CONFIG = (port: number) => `
version: 1
# Every client here is 127.0.0.1, and one test stalls 200 of them next to a normal one.
limits: { per_client: { max_connections: 1000 } }
backends:
  vault: { servers: ["127.0.0.1:${port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    sniff: { timeout: 600ms }
    routes:
      - { sni: vault.example.test, passthrough: vault }
`;

/** Connects, sends `data`, optionally closes the write side, and returns what came back. */
async function exchange(port: number, data: Uint8Array, halfClose: boolean): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, data);
    if (halfClose) await conn.closeWrite();
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

function withRecordLength(hello: Uint8Array, length: number): Uint8Array {
  const copy = hello.slice();
  copy[3] = length >> 8;
  copy[4] = length & 0xff;
  return copy;
}

Deno.test("malformed, truncated and oversized hellos each close only their own connection", async (t) => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using edgemux = await startEdgemux(CONFIG(vault.port));
  const port = edgemux.port("https");
  const hello = buildClientHello({ sni: "vault.example.test", alpn: ["h2"] });
  let seen = 0;
  const next = () =>
    edgemux.waitForRecord((_r) => edgemux.records.length > seen).then(() => {
      const r = edgemux.records[seen];
      seen = edgemux.records.length;
      return r;
    });

  await t.step("a hello cut short and then closed ends as client-closed-early", async () => {
    await exchange(port, hello.subarray(0, 60), true);
    const r = await next();
    equal(r.end, "client-closed-early");
    equal(r.up, 60);
  });

  await t.step(
    "a record length over 2^14 is malformed and answered with decode_error",
    async () => {
      const reply = await exchange(port, withRecordLength(hello, 20_000), false);
      equal([...reply].join(","), "21,3,3,0,2,2,50");
      const r = await next();
      equal(r.end, "malformed-hello");
      match(r.detail ?? "", /record length/);
    },
  );

  await t.step("a handshake length that lies about the record is malformed", async () => {
    const lying = hello.slice();
    lying[8] = (lying[8] + 3) & 0xff; // handshake length +3 bytes, record unchanged
    // The record ends early, and the next "record" is application data, not the rest.
    const stream = new Uint8Array([...lying, 23, 3, 3, 0, 3, 1, 2, 3]);
    await exchange(port, stream, false);
    const r = await next();
    equal(r.end, "malformed-hello");
  });

  await t.step("an extension length that overruns the hello is malformed", async () => {
    // The first extension's length field sits right after the compression methods.
    const bad = hello.slice();
    const sidLen = bad[5 + 4 + 34];
    const csStart = 5 + 4 + 35 + sidLen;
    const csLen = (bad[csStart] << 8) | bad[csStart + 1];
    const compStart = csStart + 2 + csLen;
    const extStart = compStart + 1 + bad[compStart] + 2;
    bad[extStart + 2] = 0xff;
    bad[extStart + 3] = 0xff;
    await exchange(port, bad, false);
    const r = await next();
    equal(r.end, "malformed-hello");
  });

  await t.step("a 64 KiB hello is refused without reading it all", async () => {
    const big = buildClientHello({ sni: "vault.example.test", padTo: 64 * 1024 - 200 });
    await exchange(port, big.subarray(0, 16384), false).catch(() => new Uint8Array());
    const r = await next();
    equal(r.end, "malformed-hello");
    match(r.detail ?? "", /exceeds/);
  });

  await t.step("an SSLv2-style hello is malformed", async () => {
    const v2 = new Uint8Array([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]);
    await exchange(port, new Uint8Array([...v2, ...new Uint8Array(37)]), false);
    const r = await next();
    equal(r.end, "malformed-hello");
    match(r.detail ?? "", /sslv2/);
  });

  await t.step("random bytes on a TLS-only listener find no route", async () => {
    const noise = crypto.getRandomValues(new Uint8Array(512));
    noise[0] = 0x01; // not TLS, not SSH, not an HTTP method
    await exchange(port, noise, false);
    const r = await next();
    equal(r.end, "no-route");
    equal(r.protocol, "unknown");
  });

  await t.step("a client that stalls mid-hello is closed at the sniff timeout", async () => {
    const started = performance.now();
    const reply = await exchange(port, hello.subarray(0, 100), false);
    const elapsed = performance.now() - started;
    equal(reply.length, 0);
    ok(elapsed >= 550 && elapsed < 3000, `closed after ${elapsed} ms, expected about 600 ms`);
    const r = await next();
    equal(r.end, "sniff-timeout");
  });

  await t.step("the listener still serves a well-formed client afterwards", async () => {
    const r = await sClient({ port, servername: "vault.example.test" });
    equal(r.peerCN, "vault.example.test");
  });
});

Deno.test("stalled clients do not delay a normal client on the same listener", async () => {
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using edgemux = await startEdgemux(CONFIG(vault.port));
  const port = edgemux.port("https");
  const hello = buildClientHello({ sni: "vault.example.test" });
  const stalled: Deno.Conn[] = [];
  for (let i = 0; i < 200; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(c, hello.subarray(0, 50));
    stalled.push(c);
  }
  const started = performance.now();
  const r = await sClient({ port, servername: "vault.example.test" });
  const elapsed = performance.now() - started;
  equal(r.peerCN, "vault.example.test");
  ok(elapsed < 500, `a normal handshake took ${elapsed} ms next to 200 stalled clients`);
  await edgemux.waitForRecord(() =>
    edgemux.records.filter((x) => x.end === "sniff-timeout").length === 200
  );
  for (const c of stalled) c.close();
});
