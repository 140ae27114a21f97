/**
 * Telling what a connection speaks from its first bytes. Pure: bytes in, a verdict out, with
 * "need more" kept apart from "not this protocol" (a short read must never be mistaken for an
 * unknown protocol).
 *
 * @module
 */

import { type ClientHelloInfo, parseClientHello } from "./client_hello.ts";

/** The verdict on the bytes read so far. */
export type Classification =
  | { kind: "incomplete" }
  | { kind: "tls"; hello: ClientHelloInfo }
  | { kind: "tls-malformed"; reason: string }
  | { kind: "http" }
  | { kind: "ssh" }
  | { kind: "unknown" };

const INCOMPLETE: Classification = Object.freeze({ kind: "incomplete" });
const HTTP: Classification = Object.freeze({ kind: "http" });
const SSH: Classification = Object.freeze({ kind: "ssh" });
const UNKNOWN: Classification = Object.freeze({ kind: "unknown" });

/** RFC 4253 §4.2: the identification string starts with these bytes. */
const SSH_PREFIX = [0x53, 0x53, 0x48, 0x2d]; // "SSH-"

/**
 * Request methods recognised as HTTP/1.x, each with its trailing space so that "GETX" is not
 * HTTP. `PRI ` starts the HTTP/2 cleartext preface. Other methods are legal HTTP, but a client
 * sending them as its first request on port 80 or 443 is vanishingly rare; they count as
 * `unknown` and follow the listener's catch-all route if it has one.
 */
const HTTP_METHODS: Uint8Array[] = [
  "GET ",
  "HEAD ",
  "POST ",
  "PUT ",
  "DELETE ",
  "OPTIONS ",
  "PATCH ",
  "CONNECT ",
  "TRACE ",
  "PRI ",
].map((m) => new TextEncoder().encode(m));

/** Compares `buf` with `prefix` over their common length: 1 match, 0 too short to tell, -1 no. */
function prefixState(buf: Uint8Array, prefix: ArrayLike<number>): 1 | 0 | -1 {
  const n = Math.min(buf.length, prefix.length);
  for (let i = 0; i < n; i++) if (buf[i] !== prefix[i]) return -1;
  return buf.length >= prefix.length ? 1 : 0;
}

/**
 * Classifies the first bytes of a connection.
 *
 * @param buf Every byte read so far, from the first.
 * @param maxHelloSize The cap on a ClientHello, passed to the parser.
 */
export function classify(buf: Uint8Array, maxHelloSize: number): Classification {
  if (buf.length === 0) return INCOMPLETE;
  const first = buf[0];
  // 0x16 is a TLS handshake record; a set high bit may be an SSLv2-style hello, which the
  // parser reports as malformed with its own reason.
  if (first === 0x16 || first >= 0x80) {
    const r = parseClientHello(buf, maxHelloSize);
    switch (r.kind) {
      case "hello":
        return { kind: "tls", hello: r.hello };
      case "malformed":
        return { kind: "tls-malformed", reason: r.reason };
      case "incomplete":
        return INCOMPLETE;
      case "not-tls":
        return UNKNOWN;
    }
  }
  if (first === 0x53) {
    const s = prefixState(buf, SSH_PREFIX);
    return s === 1 ? SSH : s === 0 ? INCOMPLETE : UNKNOWN;
  }
  let maybe = false;
  for (const method of HTTP_METHODS) {
    const s = prefixState(buf, method);
    if (s === 1) return HTTP;
    if (s === 0) maybe = true;
  }
  return maybe ? INCOMPLETE : UNKNOWN;
}

/** A fatal TLS alert record: `unrecognized_name` (112), sent before closing a refused hello. */
export const ALERT_UNRECOGNIZED_NAME = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
/** A fatal TLS alert record: `decode_error` (50), sent when a hello cannot be parsed. */
export const ALERT_DECODE_ERROR = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);
