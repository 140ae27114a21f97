/**
 * Targets `http1_head` (`parseRequestHead` / `parseResponseHead` from proxy/http/wire/head.ts) and
 * `chunked` (`ChunkedScanner.scan` from proxy/http/wire/chunked.ts), on real heads and bodies
 * mutated line by line and byte by byte.
 *
 * Checked for heads: no throw; a parsed head ends in CRLFCRLF inside the buffer and the caps,
 * parses the same from `buf[0, end)`, and its proper prefixes are `incomplete`; field names are
 * lowercase tokens and values carry no CR, LF or NUL; a request never has both Content-Length
 * and Transfer-Encoding, has at most one Host, and its framing matches its fields.
 *
 * Checked for chunked bodies: no throw; cutting the input into reads at random places gives the
 * same answer as one read; until `done` every byte is consumed; after `done` nothing is, after an
 * error the same error repeats; chunk-data ranges lie in order inside the reads; an unmutated
 * body ends exactly where it was built to, with the data it was built with.
 *
 * @module
 */

import {
  DEFAULT_HEAD_LIMITS,
  type HeadLimits,
  parseRequestHead,
  parseResponseHead,
  type RequestHeadResult,
  type ResponseHeadResult,
} from "../../proxy/http/wire/head.ts";
import { type ChunkedLimits, ChunkedScanner } from "../../proxy/http/wire/chunked.ts";
import { check, type FuzzCase, type FuzzTarget, type ScalingFamily } from "../harness.ts";
import { concat } from "../../proxy/_testing/hello_builder.ts";
import { mutateBytes, mutationCount } from "../mutate.ts";
import type { Rng } from "../rng.ts";
import { randomTarget } from "./routing.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Heads.

const REQUEST_SEEDS = [
  "GET / HTTP/1.1\r\nHost: a.example.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
  "GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.test\r\nConnection: keep-alive\r\n" +
  'sec-ch-ua: "Chromium";v="120"\r\nUpgrade-Insecure-Requests: 1\r\nUser-Agent: Mozilla/5.0\r\n' +
  "Accept: text/html,application/xhtml+xml;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n" +
  "Accept-Language: en-GB,en;q=0.9\r\nCookie: a=b; c=d\r\n\r\n",
  "POST /api/v1/items HTTP/1.1\r\nHost: api.example.test:8443\r\nContent-Type: application/json\r\n" +
  'Content-Length: 13\r\n\r\n{"name":"x"}\n',
  "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n" +
  "\r\n5\r\nhello\r\n0\r\n\r\n",
  "GET http://a.example.test/p?x HTTP/1.1\r\nHost: ignored.test\r\n\r\n",
  "CONNECT a.example.test:443 HTTP/1.1\r\nHost: a.example.test:443\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
  "GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  "GET / HTTP/1.0\r\n\r\n",
  "HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\nHost: 127.0.0.1\r\n\r\n",
  "\r\n\r\nDELETE /r/1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n",
];

const RESPONSE_SEEDS = [
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nVary: Accept-Encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  "HTTP/1.1 204 No Content\r\nDate: Wed, 26 Nov 2026 12:00:00 GMT\r\n\r\n",
  'HTTP/1.1 304 Not Modified\r\nETag: "abc"\r\nContent-Length: 100\r\n\r\n',
  "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
  "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nbody until close",
  "HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  "HTTP/1.1 200\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 7\r\n\r\n",
  "HTTP/1.1 500 Internal Server Error\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
];

const FIELD_LINES = [
  "Content-Length: 5",
  "Content-Length: 0",
  "Content-Length: 5, 5",
  "Content-Length: 5,6",
  "Content-Length: +5",
  "Content-Length: -1",
  "Content-Length: 0x5",
  "Content-Length: 99999999999999999999",
  "Content-Length: 9007199254740991",
  "Content-Length: 9007199254740992",
  "Content-Length:",
  "Content-Length: 5 5",
  "Content-Length: 005",
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: Chunked ",
  "transfer-encoding:\tchunked",
  "Transfer-Encoding: gzip, chunked",
  "Transfer-Encoding: chunked, gzip",
  "Transfer-Encoding: identity",
  "Transfer-Encoding: chunked, chunked",
  "Transfer-Encoding: ,chunked",
  "Transfer-Encoding: x-custom, chunked",
  "Transfer-Encoding : chunked",
  " Transfer-Encoding: chunked",
  "\tchunked",
  'Transfer-Encoding: "chunked"',
  "Transfer-Encoding\u000b: chunked",
  "Host: a.test",
  "Host: ",
  "Host: 127.1",
  "Host: 0x7f.1",
  "Host: [::1]:80",
  "Host: [fe80::1%25eth0]",
  "Host: a.test:0",
  "Host: a.test:065535",
  "Host: a.test:65536",
  "Host: a.test:",
  "Host: user@a.test",
  "Host: a..test",
  "Host: A.TEST.",
  "Connection: close, upgrade",
  "Connection: , ,keep-alive",
  "Upgrade: websocket",
  "Expect: 100-continue",
  "Bad Name: x",
  "Na\u0000me: x",
  ": no name",
  "X-Obs-Text: caf\u00e9",
  "X-Nul: a\u0000b",
  "X-Del: a\u007fb",
  "X-Trailing-Space: x ",
];

const METHODS = ["GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "get", "G ET", "", "PRI", "M"];
const VERSIONS = [
  "HTTP/1.1",
  "HTTP/1.0",
  "HTTP/2.0",
  "HTTP/1.10",
  "http/1.1",
  "HTTP/1.1 ",
  "HTTP/",
];
const TARGETS = [
  "http://a.test/x",
  "HTTPS://A.TEST",
  "http://a.test?q",
  "http://user@a/",
  "http://[::1]:8080/",
  "http://",
  "ftp://a/",
  "a.test:443",
  "*",
  "/a#frag",
];

/** One head-aware mutation of a head written as text (latin1). */
function mutateHead(rng: Rng, head: string): string {
  const split = head.indexOf("\r\n\r\n");
  const top = split < 0 ? head : head.slice(0, split);
  const rest = split < 0 ? "" : head.slice(split + 2);
  const lines = top.split("\r\n");
  const at = rng.int(1, Math.max(1, lines.length - 1));
  switch (rng.below(9)) {
    case 0:
      lines.splice(at, 0, rng.pick(FIELD_LINES));
      break;
    case 1:
      lines.splice(at, 0, lines[Math.min(at, lines.length - 1)]);
      break;
    case 2:
      if (lines.length > 1) lines.splice(at, 1);
      break;
    case 3: { // request line rebuilt
      const parts = lines[0].split(" ");
      if (parts[0].startsWith("HTTP/")) {
        parts[0] = rng.pick(VERSIONS);
        if (rng.chance(0.5)) parts[1] = rng.pick(["000", "099", "600", "20", "2000", "abc"]);
      } else {
        const w = rng.below(3);
        if (w === 0) parts[0] = rng.pick(METHODS);
        if (w === 1) parts[1] = rng.chance(0.5) ? rng.pick(TARGETS) : randomTarget(rng);
        if (w === 2) parts[2] = rng.pick(VERSIONS);
      }
      lines[0] = parts.join(rng.chance(0.9) ? " " : rng.pick(["  ", "\t"]));
      break;
    }
    case 4: { // a field name's case changed, or a space put before its colon
      const line = lines[at] ?? "";
      lines[at] = rng.chance(0.5) ? line.toUpperCase() : line.replace(":", " :");
      break;
    }
    case 5: // a very long field
      lines.splice(at, 0, `X-Long: ${"v".repeat(rng.int(100, 70000))}`);
      break;
    case 6: // many fields
      for (let i = rng.int(50, 140); i > 0; i--) lines.splice(at, 0, `X-F${i}: ${i}`);
      break;
    case 7: { // line endings
      const joined = lines.join("\r\n") + "\r\n\r\n" + rest.slice(2);
      return rng.chance(0.5) ? joined.replace("\r\n", "\n") : joined.replace("\r\n", "\r");
    }
    default: // leading empty lines
      return "\r\n".repeat(rng.int(1, 6)) + head;
  }
  return lines.join("\r\n") + (split < 0 ? "" : "\r\n" + rest);
}

interface HeadInput {
  kind: "request" | "response";
  /** The request method a response answers. */
  method: string;
  limits: HeadLimits;
  bytes: Uint8Array;
}

/** A control character other than HTAB: never allowed in a field value. */
function hasCtl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function checkFields(headers: [string, string][], limits: HeadLimits): void {
  check(headers.length <= limits.maxHeaders, () => `${headers.length} fields over the cap`);
  for (const [name, value] of headers) {
    check(TOKEN.test(name), () => `field name ${JSON.stringify(name)}`);
    check(!hasCtl(value), () => `control byte in ${name}: ${JSON.stringify(value)}`);
    check(!/^[ \t]|[ \t]$/.test(value), () => `whitespace around the value of ${name}`);
  }
}

function checkEnd(buf: Uint8Array, end: number, limits: HeadLimits): void {
  check(
    Number.isInteger(end) && end >= 4 && end <= buf.length && end <= limits.maxHeadBytes,
    () => `end ${end} of a ${buf.length}-byte buffer, cap ${limits.maxHeadBytes}`,
  );
  check(
    buf[end - 4] === 0x0d && buf[end - 3] === 0x0a && buf[end - 2] === 0x0d &&
      buf[end - 1] === 0x0a,
    "a head that does not end in CRLFCRLF",
  );
}

function parseHead(input: HeadInput, buf: Uint8Array): RequestHeadResult | ResponseHeadResult {
  return input.kind === "request"
    ? parseRequestHead(buf, input.limits)
    : parseResponseHead(buf, input.method, input.limits);
}

function checkHead(input: HeadInput, r: RequestHeadResult | ResponseHeadResult): string {
  const buf = input.bytes;
  check(
    r.kind === "incomplete" || r.kind === "error" || r.kind === "head",
    () => `bad kind ${JSON.stringify(r)}`,
  );
  if (r.kind === "incomplete") {
    check(buf.length < input.limits.maxHeadBytes, "incomplete at or past the head cap");
    return "incomplete";
  }
  if (r.kind === "error") {
    check(typeof r.reason === "string" && r.reason.length > 0, "an error without a reason");
    if ("status" in r) {
      check([400, 414, 431, 501, 505].includes(r.status), () => `status ${r.status}`);
      return `error ${r.status}`;
    }
    return "error";
  }
  const head = r.head;
  checkEnd(buf, head.end, input.limits);
  checkFields(head.headers, input.limits);
  const names = head.headers.map(([n]) => n);
  const hasCl = names.includes("content-length");
  const hasTe = names.includes("transfer-encoding");
  if ("method" in head) {
    check(!(hasCl && hasTe), "a request with both Content-Length and Transfer-Encoding");
    check(names.filter((n) => n === "host").length <= 1, "a request with two Host fields");
    check(head.body.kind !== "close", "close framing on a request");
    check(
      head.body.kind === "chunked" ? hasTe : head.body.kind === "length" ? hasCl : !hasCl && !hasTe,
      () => `framing ${head.body.kind} with fields ${names.join(",")}`,
    );
    check(head.version === 10 || head.version === 11, "version");
    check(head.version === 10 || head.authority !== null, "an HTTP/1.1 request without a host");
    check(TOKEN.test(head.method.toLowerCase()), () => `method ${head.method}`);
  } else {
    check(head.status >= 100 && head.status <= 599, () => `status ${head.status}`);
    if (head.body.kind === "chunked") check(hasTe, "chunked without Transfer-Encoding");
    if (head.body.kind === "length") check(hasCl && !hasTe, "length framing without its field");
    if (head.body.kind === "close") check(!head.keepAlive, "keep-alive with close framing");
  }
  if (head.body.kind === "length") {
    check(
      Number.isSafeInteger(head.body.length) && head.body.length >= 0,
      () => `length ${head.body.kind === "length" && head.body.length}`,
    );
  }
  const again = parseHead(input, buf.subarray(0, head.end));
  check(
    JSON.stringify(again) === JSON.stringify(r),
    "the head parses differently without the bytes after it",
  );
  for (const len of [0, 1, head.end - 1, head.end >> 1]) {
    if (len < 0 || len >= head.end) continue;
    const p = parseHead(input, buf.subarray(0, len));
    check(
      p.kind === "incomplete",
      () => `the ${len}-byte prefix of a ${head.end}-byte head gives ${JSON.stringify(p)}`,
    );
  }
  return `${input.kind} head, ${head.body.kind}`;
}

function generateHead(rng: Rng): HeadInput {
  const kind = rng.chance(0.65) ? "request" : "response";
  let text = rng.pick(kind === "request" ? REQUEST_SEEDS : RESPONSE_SEEDS);
  for (let i = rng.chance(0.2) ? 0 : mutationCount(rng); i > 0; i--) text = mutateHead(rng, text);
  let bytes = latin1(text);
  if (rng.chance(0.4)) {
    bytes = mutateBytes(rng, bytes, rng.int(1, 3), { maxLength: 140000 });
  }
  if (rng.chance(0.05)) bytes = bytes.slice(0, rng.below(bytes.length + 1));
  const limits = rng.chance(0.85) ? DEFAULT_HEAD_LIMITS : {
    maxHeadBytes: rng.chance(0.5) ? rng.int(0, 300) : rng.int(1024, 65536),
    maxHeaders: rng.int(0, 130),
  };
  const method = rng.pick(["GET", "HEAD", "CONNECT", "POST", "get"]);
  return { kind, method, limits, bytes };
}

/** A line of JSON with everything but the bytes, a newline, then the bytes. */
function encodeWithHeader(meta: unknown, bytes: Uint8Array): Uint8Array {
  return concat(enc.encode(JSON.stringify(meta) + "\n"), bytes);
}

function decodeWithHeader(file: Uint8Array): { meta: unknown; bytes: Uint8Array } {
  const nl = file.indexOf(0x0a);
  if (nl < 0) throw new Error("the file has no JSON header line");
  return { meta: JSON.parse(dec.decode(file.subarray(0, nl))), bytes: file.slice(nl + 1) };
}

function headCase(input: HeadInput): FuzzCase {
  return {
    run() {
      const r = parseHead(input, input.bytes);
      return () => checkHead(input, r);
    },
    bytes: () =>
      encodeWithHeader(
        { kind: input.kind, method: input.method, limits: input.limits },
        input.bytes,
      ),
  };
}

const HEAD_SCALING: ScalingFamily[] = [
  {
    name: "many short fields",
    make(_rng, size) {
      let s = "GET / HTTP/1.1\r\nHost: a.test\r\n";
      for (let i = 0; s.length < size - 2; i++) s += `X-${i}: v\r\n`;
      const bytes = latin1(s + "\r\n");
      const limits = { maxHeadBytes: 65536, maxHeaders: 100000 };
      return { bytes: bytes.length, run: () => void parseRequestHead(bytes, limits) };
    },
  },
  {
    name: "one long field value",
    make(_rng, size) {
      const bytes = latin1(`GET / HTTP/1.1\r\nHost: a.test\r\nX: ${"v".repeat(size)}\r\n\r\n`);
      return {
        bytes: bytes.length,
        run: () => void parseRequestHead(bytes, { maxHeadBytes: 65536, maxHeaders: 100 }),
      };
    },
  },
  {
    name: "a head that never ends",
    make(_rng, size) {
      const bytes = latin1(`GET / HTTP/1.1\r\nX: ${"v\r\n".repeat(size / 3)}`);
      return {
        bytes: bytes.length,
        run: () => void parseRequestHead(bytes, { maxHeadBytes: 65536, maxHeaders: 100 }),
      };
    },
  },
  {
    name: "a long Connection list",
    make(_rng, size) {
      const bytes = latin1(
        `HTTP/1.1 200 OK\r\nConnection: ${"a, ".repeat(size / 3)}close\r\n\r\n`,
      );
      return {
        bytes: bytes.length,
        run: () => void parseResponseHead(bytes, "GET", { maxHeadBytes: 65536, maxHeaders: 100 }),
      };
    },
  },
];

/** The `http1_head` target. */
export const http1HeadTarget: FuzzTarget = {
  name: "http1_head",
  summary: "parseRequestHead / parseResponseHead on mutated real heads: no throw; never " +
    "Content-Length with chunked; framing, fields, end and prefixes consistent",
  share: 0.15,
  maxMs: 20,
  setup() {},
  generate: (rng) => headCase(generateHead(rng)),
  replay(file) {
    const { meta, bytes } = decodeWithHeader(file);
    const m = meta as { kind: "request" | "response"; method: string; limits: HeadLimits };
    return headCase({ kind: m.kind, method: m.method, limits: m.limits, bytes });
  },
  scaling: HEAD_SCALING,
};

// ---------------------------------------------------------------------------------------------
// Chunked bodies.

interface ChunkedInput {
  bytes: Uint8Array;
  limits: ChunkedLimits;
  /** Where the input is cut into reads, ascending, inside (0, length). */
  cuts: number[];
  /** For an unmutated body: where it ends and how many data bytes it carries. */
  expect: { end: number; data: number } | null;
}

function buildChunked(rng: Rng): { bytes: Uint8Array; end: number; data: number } {
  const parts: Uint8Array[] = [];
  let data = 0;
  for (let i = rng.int(0, 6); i > 0; i--) {
    const size = 1 + rng.size(300);
    let hex = size.toString(16);
    if (rng.chance(0.2)) hex = hex.toUpperCase();
    if (rng.chance(0.1)) hex = "0".repeat(rng.int(1, 5)) + hex;
    const ext = rng.chance(0.2)
      ? rng.pick([";a=b", ";x", " ;y", '\t;z="q"', ";" + "e".repeat(50)])
      : "";
    parts.push(enc.encode(`${hex}${ext}\r\n`), rng.bytes(size), enc.encode("\r\n"));
    data += size;
  }
  parts.push(enc.encode(rng.chance(0.9) ? "0\r\n" : "000;end\r\n"));
  if (rng.chance(0.2)) {
    parts.push(enc.encode(rng.pick(["Expires: never\r\n", "X-A: 1\r\nX-B: \t2\r\n"])));
  }
  parts.push(enc.encode("\r\n"));
  const body = concat(...parts);
  return { bytes: body, end: body.length, data };
}

function generateChunked(rng: Rng): ChunkedInput {
  const built = buildChunked(rng);
  let bytes = built.bytes;
  let expect: ChunkedInput["expect"] = { end: built.end, data: built.data };
  if (rng.chance(0.7)) {
    bytes = mutateBytes(rng, bytes, mutationCount(rng), { maxLength: 40000 });
    expect = null;
  }
  if (rng.chance(0.3)) bytes = concat(bytes, enc.encode("GET /next HTTP/1.1\r\n"));
  let limits: ChunkedLimits = {};
  if (rng.chance(0.15)) {
    limits = { maxChunkLineBytes: rng.int(0, 64), maxTrailerBytes: rng.int(0, 64) };
    expect = null;
  }
  const cuts = new Set<number>();
  for (let i = rng.int(0, 6); i > 0; i--) {
    if (bytes.length > 1) cuts.add(rng.int(1, bytes.length - 1));
  }
  return { bytes, limits, cuts: [...cuts].sort((a, b) => a - b), expect };
}

type Outcome = { error: string } | { consumed: number; done: boolean; data: number };

/** Scans `buf` as reads ending at each cut; checks each read's answer and the data ranges. */
function scanInReads(buf: Uint8Array, limits: ChunkedLimits, cuts: number[]): Outcome {
  const scanner = new ChunkedScanner(limits);
  const bounds = [...cuts, buf.length];
  let from = 0;
  let consumed = 0;
  let data = 0;
  for (const to of bounds) {
    let last = from;
    const r = scanner.scan(buf, from, to, (a, b) => {
      check(a >= last && a < b && b <= to, () => `data range ${a}..${b} in read ${from}..${to}`);
      last = b;
      data += b - a;
    });
    if ("error" in r) {
      check(typeof r.error === "string" && r.error.length > 0, "an error without a reason");
      const again = scanner.scan(buf, to, buf.length);
      check("error" in again && again.error === r.error, "an error that does not repeat");
      return { error: r.error };
    }
    check(
      Number.isInteger(r.consumed) && r.consumed >= 0 && r.consumed <= to - from,
      () => `consumed ${r.consumed} of ${to - from}`,
    );
    consumed += r.consumed;
    if (r.done) {
      check(scanner.done, "done in the result but not on the scanner");
      const after = scanner.scan(buf, from + r.consumed, buf.length);
      check(
        !("error" in after) && after.consumed === 0 && after.done,
        () => `a scan after done gives ${JSON.stringify(after)}`,
      );
      return { consumed, done: true, data };
    }
    check(r.consumed === to - from, () => `not done, yet ${r.consumed} of ${to - from} consumed`);
    from = to;
  }
  return { consumed, done: false, data };
}

function checkChunked(input: ChunkedInput, whole: Outcome, pieces: Outcome): string {
  check(
    JSON.stringify(whole) === JSON.stringify(pieces),
    () =>
      `one read gives ${JSON.stringify(whole)}, reads cut at ${input.cuts} give ` +
      JSON.stringify(pieces),
  );
  if (input.expect !== null) {
    const e = input.expect;
    check(
      !("error" in whole) && whole.done && whole.consumed === e.end && whole.data === e.data,
      () => `a well-formed body gives ${JSON.stringify(whole)}, built as ${JSON.stringify(e)}`,
    );
  }
  return "error" in whole ? "error" : whole.done ? "done" : "needs more";
}

function chunkedCase(input: ChunkedInput): FuzzCase {
  return {
    run() {
      // The checks of each read's answer run inside, as they need the scanner's state.
      const whole = scanInReads(input.bytes, input.limits, []);
      const pieces = scanInReads(input.bytes, input.limits, input.cuts);
      return () => checkChunked(input, whole, pieces);
    },
    bytes: () => encodeWithHeader({ limits: input.limits, cuts: input.cuts }, input.bytes),
  };
}

function scanAll(bytes: Uint8Array, limits: ChunkedLimits = {}): void {
  new ChunkedScanner(limits).scan(bytes, 0, bytes.length);
}

const CHUNKED_SCALING: ScalingFamily[] = [
  {
    name: "one-byte chunks",
    make(_rng, size) {
      const bytes = enc.encode("1\r\nx\r\n".repeat(size / 6) + "0\r\n\r\n");
      return { bytes: bytes.length, run: () => scanAll(bytes) };
    },
  },
  {
    name: "a long extension",
    make(_rng, size) {
      const bytes = enc.encode(`1;${"e".repeat(size)}\r\nx\r\n0\r\n\r\n`);
      return { bytes: bytes.length, run: () => scanAll(bytes, { maxChunkLineBytes: 1 << 20 }) };
    },
  },
  {
    name: "many trailer fields",
    make(_rng, size) {
      const bytes = enc.encode(`0\r\n${"T: v\r\n".repeat(size / 6)}\r\n`);
      return { bytes: bytes.length, run: () => scanAll(bytes, { maxTrailerBytes: 1 << 20 }) };
    },
  },
];

/** The `chunked` target. */
export const chunkedTarget: FuzzTarget = {
  name: "chunked",
  summary: "ChunkedScanner.scan on mutated chunked bodies: no throw; any cut into reads gives " +
    "the answer of one read; done and errors stick; data ranges in order",
  share: 0.05,
  maxMs: 20,
  setup() {},
  generate: (rng) => chunkedCase(generateChunked(rng)),
  replay(file) {
    const { meta, bytes } = decodeWithHeader(file);
    const m = meta as { limits: ChunkedLimits; cuts: number[] };
    return chunkedCase({ bytes, limits: m.limits, cuts: m.cuts, expect: null });
  },
  scaling: CHUNKED_SCALING,
};
