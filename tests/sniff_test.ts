/**
 * Sniffing on the wire: ClientHellos that arrive in pieces, over several records, or from a
 * browser, are routed correctly and replayed byte for byte. The backends are "digest" servers
 * that answer with the SHA-256 of everything they received, so a test sees both where a
 * connection went and that not one byte was lost, added or reordered.
 */

import { equal } from "node:assert/strict";
import { startTcpBackend, type TcpBackend } from "./_helpers/backends.ts";
import { readAll, sha256Hex, startEdgemux, type TestProxy, writeAll } from "./_helpers/edgemux.ts";
import { buildClientHello, concat, splitRecords } from "../proxy/_testing/hello_builder.ts";

const HELLOS = new URL("../testdata/hellos/", import.meta.url);
const read = (name: string) => Deno.readFileSync(new URL(name, HELLOS));

async function withDigestProxy(
  fn: (edgemux: TestProxy, backends: Record<string, TcpBackend>) => Promise<void>,
): Promise<void> {
  await using a = await startTcpBackend("a", "digest");
  await using www = await startTcpBackend("www", "digest");
  await using other = await startTcpBackend("other", "digest");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  a: { servers: ["127.0.0.1:${a.port}"] }
  www: { servers: ["127.0.0.1:${www.port}"] }
  other: { servers: ["127.0.0.1:${other.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    sniff: { timeout: 3s }
    routes:
      - { sni: a.example.test, passthrough: a }
      - { sni: www.example.test, passthrough: www }
      - { protocol: tls, passthrough: other }
`);
  await fn(edgemux, { a, www, other });
}

/** Sends `chunks` with a pause after each, half-closes, and returns the backend's answer. */
async function send(port: number, chunks: Uint8Array[], pauseMs = 0): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    for (const c of chunks) {
      await writeAll(conn, c);
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
    await conn.closeWrite();
    return new TextDecoder().decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

function bytesOf(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

Deno.test("a ClientHello written one byte at a time is routed and replayed exactly", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = read("curl.bin"); // SNI a.example.test
    const answer = await send(edgemux.port("https"), bytesOf(hello, 1), 1);
    equal(answer, `a ${hello.length} ${await sha256Hex(hello)}\n`);
    const rec = await edgemux.waitForRecord((r) => r.route !== null);
    equal(rec.sni, "a.example.test");
    equal(rec.up, hello.length);
  });
});

Deno.test("a ClientHello split over three TLS records by openssl is routed and replayed", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = read("openssl_s_client_split.bin");
    const answer = await send(edgemux.port("https"), bytesOf(hello, 536), 5);
    equal(answer, `a ${hello.length} ${await sha256Hex(hello)}\n`);
  });
});

Deno.test("a hello built into three records of odd sizes arrives the same", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = splitRecords(buildClientHello({ sni: "www.example.test" }), [7, 100]);
    const answer = await send(edgemux.port("https"), bytesOf(hello, 13));
    equal(answer, `www ${hello.length} ${await sha256Hex(hello)}\n`);
  });
});

Deno.test("Chromium's 2 KB post-quantum ClientHello is routed by its SNI", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = read("chromium.bin"); // SNI www.example.test, 2020 bytes
    equal(hello.length > 1900, true);
    const answer = await send(edgemux.port("https"), [hello]);
    equal(answer, `www ${hello.length} ${await sha256Hex(hello)}\n`);
    const rec = await edgemux.waitForRecord((r) => r.sni === "www.example.test");
    equal(rec.alpn.join(","), "h2,http/1.1");
  });
});

Deno.test("bytes after the hello (0-RTT early data) are forwarded untouched, in order", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = read("deno_connect_tls.bin"); // SNI a.example.test
    // An application_data record the way 0-RTT early data follows the hello.
    const early = concat(new Uint8Array([23, 3, 3, 0, 5]), new TextEncoder().encode("early"));
    const stream = concat(hello, early, new Uint8Array(100_000).fill(7));
    const answer = await send(edgemux.port("https"), [stream]);
    equal(answer, `a ${stream.length} ${await sha256Hex(stream)}\n`);
  });
});

Deno.test("a hello without SNI goes to the listener's default TLS route", async () => {
  await withDigestProxy(async (edgemux) => {
    const hello = read("openssl_s_client_nosni.bin");
    const answer = await send(edgemux.port("https"), [hello]);
    equal(answer.split(" ")[0], "other");
  });
});
