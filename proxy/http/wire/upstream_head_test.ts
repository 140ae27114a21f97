import { equal, match } from "node:assert/strict";
import { parseRequestHead, type RequestHead } from "./head.ts";
import {
  encodeHead,
  NO_HEADER_OPS,
  type UpstreamRequest,
  upstreamRequestHead,
} from "./upstream_head.ts";

function head(text: string): RequestHead {
  const r = parseRequestHead(new TextEncoder().encode(text));
  if (r.kind !== "head") throw new Error(`not a head: ${JSON.stringify(r)}`);
  return r.head;
}

function request(h: RequestHead, trusted: boolean, close = false): UpstreamRequest {
  return {
    method: h.method,
    path: h.path,
    authority: h.authority,
    headers: h.headers,
    connection: h.connection,
    framing: h.body,
    upgrade: null,
    forwarding: { clientIp: "192.0.2.7", proto: "https", trusted },
    ops: NO_HEADER_OPS,
    close,
  };
}

function upstream(h: RequestHead, trusted: boolean, close = false): string {
  return new TextDecoder().decode(upstreamRequestHead(request(h, trusted, close)));
}

const SPOOFED = "GET /x HTTP/1.1\r\nHost: a.example.test\r\nX-Forwarded-For: 6.6.6.6\r\n" +
  "X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\r\n";

Deno.test("upstreamRequestHead() replaces every client-address field an untrusted client sent", () => {
  const text = upstream(head(SPOOFED), false);
  equal(text.includes("6.6.6.6"), false, text);
  match(text, /\r\nx-forwarded-for: 192\.0\.2\.7\r\n/);
  match(text, /\r\nx-real-ip: 192\.0\.2\.7\r\n/);
  match(text, /\r\nforwarded: for=192\.0\.2\.7;proto=https;host="a\.example\.test"\r\n/);
  equal(/true-client-ip/i.test(text), false);
});

Deno.test("upstreamRequestHead() keeps and extends a trusted proxy's client-address fields", () => {
  const text = upstream(head(SPOOFED), true);
  match(text, /\r\nx-forwarded-for: 6\.6\.6\.6, 192\.0\.2\.7\r\n/);
  match(text, /\r\nx-real-ip: 6\.6\.6\.6\r\n/);
  match(text, /\r\ntrue-client-ip: 6\.6\.6\.6\r\n/);
  match(text, /\r\nforwarded: for=6\.6\.6\.6, for=192\.0\.2\.7;/);
});

Deno.test("upstreamRequestHead() drops hop-by-hop fields and those Connection names, but not framing", () => {
  const text = upstream(
    head(
      "POST /y HTTP/1.1\r\nHost: a.example.test\r\nConnection: keep-alive, x-secret, content-length\r\n" +
        "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nTE: trailers\r\nContent-Length: 3\r\n\r\nabc",
    ),
    false,
    true,
  );
  equal(/x-secret|keep-alive|\r\nte:/i.test(text), false, text);
  match(text, /\r\ncontent-length: 3\r\n/);
  match(text, /\r\nconnection: close\r\n\r\n$/);
  match(text, /^POST \/y HTTP\/1\.1\r\nhost: a\.example\.test\r\n/);
});

Deno.test("encodeHead() fills the buffer it is given when the head fits, else fresh memory", () => {
  const into = new Uint8Array(32).fill(0xee);
  const small = encodeHead("HTTP/1.1 204 No Content\r\n\r\n", into);
  equal(small.buffer, into.buffer);
  equal(small.byteOffset, 0);
  equal(new TextDecoder().decode(small), "HTTP/1.1 204 No Content\r\n\r\n");
  equal(into[small.length], 0xee, "nothing written past the head");

  const text = "HTTP/1.1 200 OK\r\nx-long: " + "v".repeat(40) + "\r\n\r\n";
  const big = encodeHead(text, into);
  equal(big.buffer === into.buffer, false);
  equal(new TextDecoder().decode(big), text);
  equal(into[0], small[0], "a head that does not fit leaves the buffer alone");
});

Deno.test("upstreamRequestHead() writes the same bytes with or without a buffer", () => {
  const req = request(head(SPOOFED), false);
  const fresh = upstreamRequestHead(req);
  const scratch = new Uint8Array(4096);
  const reused = upstreamRequestHead(req, scratch);
  equal(reused.buffer, scratch.buffer);
  equal(new TextDecoder().decode(reused), new TextDecoder().decode(fresh));
  const tooSmall = upstreamRequestHead(req, new Uint8Array(16));
  equal(new TextDecoder().decode(tooSmall), new TextDecoder().decode(fresh));
});
