import { equal, ok } from "node:assert/strict";
import { DeadlineSet } from "../deadlines.ts";
import { sniff } from "./sniff.ts";

const deadlines = new DeadlineSet();
const HELLOS = new URL("../../testdata/hellos/", import.meta.url);

async function pair(): Promise<[Deno.TcpConn, Deno.TcpConn, () => void]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [inner, outer] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
  ]);
  return [inner, outer, () => listener.close()];
}

// The sniffed bytes live as long as the connection (they are replayed upstream first), so they
// must not keep the whole, possibly grown, read buffer alive.
for (
  const file of ["curl.bin", "chromium.bin", "openssl_s_client_split.bin", "deno_connect_tls.bin"]
) {
  Deno.test(`sniff() returns the ${file} hello in a buffer of exactly its size`, async () => {
    const hello = await Deno.readFile(new URL(file, HELLOS));
    const [inner, outer, stop] = await pair();
    const result = sniff(
      inner,
      { timeout: 5000, silentAfter: null, maxHelloSize: 16384 },
      deadlines,
    );
    for (let off = 0; off < hello.length;) off += await outer.write(hello.subarray(off));
    const r = await result;
    equal(r.kind, "classified");
    if (r.kind !== "classified") return;
    equal(r.verdict.kind, "tls");
    ok(r.bytes.every((b, i) => b === hello[i]));
    equal(r.bytes.length, hello.length);
    equal(r.bytes.buffer.byteLength, hello.length, "the bytes keep a larger buffer alive");
    inner.close();
    outer.close();
    stop();
  });
}

Deno.test("sniff() returns a plain HTTP request head in a buffer of exactly its size", async () => {
  const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n");
  const [inner, outer, stop] = await pair();
  const result = sniff(inner, { timeout: 5000, silentAfter: null, maxHelloSize: 16384 }, deadlines);
  await outer.write(head);
  const r = await result;
  equal(r.kind, "classified");
  if (r.kind === "classified") {
    ok(r.bytes.length > 0 && r.bytes.length <= head.length);
    equal(r.bytes.buffer.byteLength, r.bytes.length);
  }
  inner.close();
  outer.close();
  stop();
});
