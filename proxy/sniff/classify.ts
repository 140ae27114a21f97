/**
 * Telling what a connection speaks from its first bytes: one table of probes, one per protocol.
 * Pure: bytes in, a verdict out, with "need more" kept apart from "not this protocol" (a short
 * read must never be mistaken for an unknown protocol).
 *
 * @module
 */

import { assertNever, type Protocol } from "../../config/types.ts";
import { type ClientHelloInfo, parseClientHello } from "./client_hello.ts";

/**
 * The protocols a probe recognises: every {@link Protocol} but `silent` (nothing was sent) and
 * `unknown` (no probe matched).
 */
export type ProbedProtocol = Exclude<Protocol, "silent" | "unknown">;

/** The verdict on the bytes read so far. */
export type Classification =
  | { kind: "incomplete" }
  | { kind: "tls"; hello: ClientHelloInfo }
  | { kind: "tls-malformed"; reason: string }
  | { kind: Exclude<ProbedProtocol, "tls"> }
  | { kind: "unknown" };

/**
 * What one probe says about the bytes read so far, as sslh's probes do: a verdict (its protocol,
 * or for TLS a malformed hello), `no` (not this protocol), or `need-more` (too few bytes to tell).
 */
export type ProbeAnswer =
  | Exclude<Classification, { kind: "incomplete" | "unknown" }>
  | "no"
  | "need-more";

/** Looks at the first bytes of a connection (at least one) for one protocol. */
export type Probe = (buf: Uint8Array, maxHelloSize: number) => ProbeAnswer;

const INCOMPLETE: Classification = Object.freeze({ kind: "incomplete" });
const HTTP: ProbeAnswer = Object.freeze({ kind: "http" });
const SSH: ProbeAnswer = Object.freeze({ kind: "ssh" });
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
 * A TLS ClientHello (RFC 8446 §5.1: a handshake record, 0x16). A set high bit may be an
 * SSLv2-style hello, which the parser reports as malformed with its own reason.
 */
function probeTls(buf: Uint8Array, maxHelloSize: number): ProbeAnswer {
  const first = buf[0];
  if (first !== 0x16 && first < 0x80) return "no";
  const r = parseClientHello(buf, maxHelloSize);
  switch (r.kind) {
    case "hello":
      return { kind: "tls", hello: r.hello };
    case "malformed":
      return { kind: "tls-malformed", reason: r.reason };
    case "incomplete":
      return "need-more";
    case "not-tls":
      return "no";
    default:
      return assertNever(r, "ClientHello parse result");
  }
}

/** An SSH identification string (RFC 4253 §4.2). */
function probeSsh(buf: Uint8Array): ProbeAnswer {
  if (buf[0] !== 0x53) return "no";
  const s = prefixState(buf, SSH_PREFIX);
  return s === 1 ? SSH : s === 0 ? "need-more" : "no";
}

/** An HTTP/1.x request line, or the HTTP/2 cleartext preface. */
function probeHttp(buf: Uint8Array): ProbeAnswer {
  let maybe = false;
  for (const method of HTTP_METHODS) {
    const s = prefixState(buf, method);
    if (s === 1) return HTTP;
    if (s === 0) maybe = true;
  }
  return maybe ? "need-more" : "no";
}

/**
 * Every probe, by the protocol it recognises, tried in this order (modelled on sslh's probe.c).
 * Adding a protocol is one entry here, its name in `Protocol` (config/types.ts), and its case in
 * the switches over a verdict (the compiler lists them). The probes must not claim each other's
 * bytes: a probe that matches wins even when one before it needs more.
 */
const PROBES: Readonly<Record<ProbedProtocol, Probe>> = {
  tls: probeTls,
  ssh: probeSsh,
  http: probeHttp,
};
const PROBE_LIST: readonly Probe[] = Object.values(PROBES);

/**
 * Classifies the first bytes of a connection: the first probe that matches decides; when none
 * does, "need more" if any probe could still match, else `unknown`.
 *
 * @param buf Every byte read so far, from the first.
 * @param maxHelloSize The cap on a ClientHello, passed to the parser.
 */
export function classify(buf: Uint8Array, maxHelloSize: number): Classification {
  if (buf.length === 0) return INCOMPLETE;
  let needMore = false;
  for (const probe of PROBE_LIST) {
    const answer = probe(buf, maxHelloSize);
    if (typeof answer !== "string") return answer;
    if (answer === "need-more") needMore = true;
  }
  return needMore ? INCOMPLETE : UNKNOWN;
}

/** A fatal TLS alert record: `unrecognized_name` (112), sent before closing a refused hello. */
export const ALERT_UNRECOGNIZED_NAME = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
/** A fatal TLS alert record: `decode_error` (50), sent when a hello cannot be parsed. */
export const ALERT_DECODE_ERROR = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);
