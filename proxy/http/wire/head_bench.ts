/**
 * Run with `deno bench proxy/http/wire/head_bench.ts`. Each bench parses one complete head
 * (plus a partial one, to price the `incomplete` answer a sniffer gets between reads).
 */
import { ChunkedScanner } from "./chunked.ts";
import { parseRequestHead, parseResponseHead } from "./head.ts";
import { NATIVE_LATIN1_DECODER } from "./latin1.ts";

function bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

const CURL = bytes(
  "GET /metrics?x=1 HTTP/1.1\r\nHost: prometheus.example.tld\r\nUser-Agent: curl/8.5.0\r\n" +
    "Accept: */*\r\n\r\n",
);

const BROWSER_FIELDS = [
  "Host: git.example.tld",
  "Connection: keep-alive",
  'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"',
  "sec-ch-ua-mobile: ?0",
  'sec-ch-ua-platform: "Linux"',
  "Upgrade-Insecure-Requests: 1",
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
  "Chrome/131.0.0.0 Safari/537.36",
  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp," +
  "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
  "Sec-Fetch-Site: same-origin",
  "Sec-Fetch-Mode: navigate",
  "Sec-Fetch-User: ?1",
  "Sec-Fetch-Dest: document",
  "Referer: https://git.example.tld/explore/repos",
  "Accept-Encoding: gzip, deflate, br, zstd",
  "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8",
  "Cookie: i_like_gitea=0123456789abcdef; _csrf=ZmFrZS1jc3JmLXRva2VuLWZvci1iZW5jaA",
];

const BROWSER = bytes(
  "GET /user/repo/src/branch/main/README.md HTTP/1.1\r\n" + BROWSER_FIELDS.join("\r\n") +
    "\r\n\r\n",
);

const EXTRA_FIELDS = Array.from(
  { length: 40 - BROWSER_FIELDS.length },
  (_, i) => `X-Custom-Field-${i}: value-${i}-${"v".repeat(i % 7 * 5)}`,
);
const FORTY = bytes(
  "POST /api/v1/repos/user/repo/issues HTTP/1.1\r\n" +
    [...BROWSER_FIELDS, ...EXTRA_FIELDS].join("\r\n") + "\r\n\r\n",
);

const RESPONSE = bytes(
  "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 12:00:00 GMT\r\n" +
    "Content-Type: text/html; charset=utf-8\r\nContent-Length: 12345\r\nConnection: keep-alive\r\n" +
    "Cache-Control: no-store\r\nX-Frame-Options: SAMEORIGIN\r\n\r\n",
);

// A 64 KiB body in 1 KiB chunks, scanned as four 16 KiB reads.
const CHUNKED_BODY = (() => {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 64; i++) parts.push(bytes("400\r\n"), new Uint8Array(1024), bytes("\r\n"));
  parts.push(bytes("0\r\n\r\n"));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
})();

function expectHead(kind: string): void {
  if (kind !== "head") throw new Error(`benchmark input did not parse: ${kind}`);
}

expectHead(parseRequestHead(CURL).kind);
expectHead(parseRequestHead(BROWSER).kind);
expectHead(parseRequestHead(FORTY).kind);
expectHead(parseResponseHead(RESPONSE, "GET").kind);

const group = `request heads (native latin1: ${NATIVE_LATIN1_DECODER})`;

Deno.bench(`curl GET, ${CURL.length} bytes, 3 fields`, { group, baseline: true }, () => {
  parseRequestHead(CURL);
});

Deno.bench(`browser GET, ${BROWSER.length} bytes, 16 fields`, { group }, () => {
  parseRequestHead(BROWSER);
});

Deno.bench(`40 fields, ${FORTY.length} bytes`, { group }, () => {
  parseRequestHead(FORTY);
});

const PARTIAL = BROWSER.subarray(0, BROWSER.length - 3);
Deno.bench("browser GET minus its last 3 bytes (incomplete)", { group }, () => {
  parseRequestHead(PARTIAL);
});

Deno.bench(`response head, ${RESPONSE.length} bytes, 8 fields`, () => {
  parseResponseHead(RESPONSE, "GET");
});

Deno.bench("chunked scan of a 64 KiB body in 1 KiB chunks, 16 KiB reads", () => {
  const scanner = new ChunkedScanner();
  for (let off = 0; off < CHUNKED_BODY.length; off += 16384) {
    scanner.scan(CHUNKED_BODY, off, Math.min(CHUNKED_BODY.length, off + 16384));
  }
  if (!scanner.done) throw new Error("chunked body did not end");
});
