// Cost of one parseClientHello() call on the hellos the sniffer sees most.
// Run: deno bench proxy/sniff/client_hello_bench.ts (no permissions needed: hellos are built here).
import { parseClientHello } from "./client_hello.ts";
import { buildClientHello, splitRecords } from "../_testing/hello_builder.ts";

// Like curl's 517-byte hello: SNI, h2 + http/1.1, padded to 512.
const curlLike = buildClientHello({ sni: "a.example.test", alpn: ["h2", "http/1.1"], padTo: 512 });

// Like Chromium's ~2 KB hello: an X25519MLKEM768-sized key share, ECH GREASE, GREASE types.
const browserLike = buildClientHello({
  sni: "www.example.test",
  alpn: ["h2", "http/1.1"],
  keyShareBytes: 1216,
  extraExtensions: [
    { type: 0x0a0a, data: new Uint8Array(0) },
    { type: 0xfe0d, data: new Uint8Array(218) },
    { type: 0x44cd, data: Uint8Array.of(0, 3, 2, 0x68, 0x32) },
    { type: 0x5a5a, data: Uint8Array.of(0) },
  ],
  padTo: 2015,
});

const browserIn3Records = splitRecords(browserLike, [700, 700]);

const notTls = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n");

function check(name: string, b: Uint8Array, kind: string, records = 1): void {
  const r = parseClientHello(b);
  if (r.kind !== kind || (r.kind === "hello" && r.hello.records !== records)) {
    throw new Error(`bench input ${name} parsed as ${JSON.stringify(r)}`);
  }
}
check("curl-like", curlLike, "hello");
check("browser-like", browserLike, "hello");
check("browser-like in 3 records", browserIn3Records, "hello", 3);
check("plain HTTP", notTls, "not-tls");

Deno.bench(`parseClientHello() curl-like hello, ${curlLike.length} B`, { group: "hello" }, () => {
  parseClientHello(curlLike);
});

Deno.bench(
  `parseClientHello() browser-like hello, ${browserLike.length} B`,
  { group: "hello", baseline: true },
  () => {
    parseClientHello(browserLike);
  },
);

Deno.bench(
  `parseClientHello() browser-like hello in 3 records, ${browserIn3Records.length} B`,
  { group: "hello" },
  () => {
    parseClientHello(browserIn3Records);
  },
);

Deno.bench("parseClientHello() plain HTTP (not-tls)", () => {
  parseClientHello(notTls);
});
