import { deepEqual, equal, ok } from "node:assert/strict";
import { type Classification, classify } from "./classify.ts";
import { buildClientHello } from "../_testing/hello_builder.ts";

const MAX = 16 * 1024;
const text = (s: string) => new TextEncoder().encode(s);

/** A whole first flight of each protocol the probes know, and what it classifies as. */
const SAMPLES: [string, Uint8Array, Classification["kind"]][] = [
  ["TLS ClientHello", buildClientHello({ sni: "a.example.test" }), "tls"],
  ["SSH banner", text("SSH-2.0-OpenSSH_9.6\r\n"), "ssh"],
  ["HTTP/1.1 GET", text("GET / HTTP/1.1\r\nhost: a\r\n\r\n"), "http"],
  ["HTTP/1.1 OPTIONS", text("OPTIONS * HTTP/1.1\r\n\r\n"), "http"],
  ["HTTP/2 preface", text("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "http"],
];

Deno.test("classify() names each protocol from a whole first flight", () => {
  for (const [what, bytes, kind] of SAMPLES) equal(classify(bytes, MAX).kind, kind, what);
});

Deno.test("every prefix of a protocol's first flight is that protocol or 'need more', never unknown", () => {
  for (const [what, bytes, kind] of SAMPLES) {
    for (let n = 0; n <= bytes.length; n++) {
      const got = classify(bytes.subarray(0, n), MAX).kind;
      ok(got === kind || got === "incomplete", `${what}, ${n} bytes: ${got}`);
    }
  }
});

Deno.test("bytes no probe claims are unknown at once, not 'need more'", () => {
  for (const s of ["X", "SSX", "GETX", "get / HTTP/1.1", "\r\n", "\x00\x01", "HELO a\r\n"]) {
    equal(classify(text(s), MAX).kind, "unknown", JSON.stringify(s));
  }
  equal(classify(new Uint8Array(0), MAX).kind, "incomplete");
});

Deno.test("a broken ClientHello is a malformed TLS verdict with the parser's reason", () => {
  const hello = buildClientHello({ sni: "a.example.test" });
  const broken = hello.slice();
  broken[5] = 0x02; // a ServerHello, not a ClientHello
  const got = classify(broken, MAX);
  equal(got.kind, "tls-malformed");
  ok("reason" in got && got.reason.length > 0);
  deepEqual(classify(hello, MAX).kind, "tls");
});
