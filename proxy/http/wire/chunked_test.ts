import assert from "node:assert/strict";
import fc from "fast-check";
import { ChunkedScanner, type ChunkedScanResult } from "./chunked.ts";

const enc = new TextEncoder();
const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

interface BodySpec {
  chunks: Uint8Array[];
  extensions?: string[]; // per chunk, and one more for the last-chunk
  trailers?: string[]; // whole field lines without CRLF
  hexUpper?: boolean;
}

function encodeChunked(spec: BodySpec): Uint8Array {
  const parts: Uint8Array[] = [];
  spec.chunks.forEach((chunk, i) => {
    let size = chunk.length.toString(16);
    if (spec.hexUpper) size = size.toUpperCase();
    parts.push(bytes(`${size}${spec.extensions?.[i] ?? ""}\r\n`), chunk, bytes("\r\n"));
  });
  parts.push(bytes(`0${spec.extensions?.[spec.chunks.length] ?? ""}\r\n`));
  for (const t of spec.trailers ?? []) parts.push(bytes(`${t}\r\n`));
  parts.push(bytes("\r\n"));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function scanAll(input: Uint8Array | string, scanner = new ChunkedScanner()): ChunkedScanResult {
  const buf = typeof input === "string" ? bytes(input) : input;
  return scanner.scan(buf, 0, buf.length);
}

/** Feeds `buf` split at `cuts`; returns every result and checks the caller-side contract. */
function scanSplit(scanner: ChunkedScanner, buf: Uint8Array, cuts: number[]): ChunkedScanResult[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const results: ChunkedScanResult[] = [];
  let from = 0;
  for (const to of [...points, buf.length]) {
    if (to < from) continue;
    const r = scanner.scan(buf, from, to);
    results.push(r);
    if ("error" in r || r.done) return results;
    from = to;
  }
  return results;
}

Deno.test("ChunkedScanner.scan() consumes a whole body and reports done", () => {
  const body = encodeChunked({ chunks: [enc.encode("hello"), enc.encode(" world")] });
  assert.deepEqual(scanAll(body), { consumed: body.length, done: true });
});

Deno.test("ChunkedScanner.scan() accepts a body made only of the last chunk", () => {
  assert.deepEqual(scanAll("0\r\n\r\n"), { consumed: 5, done: true });
});

Deno.test("ChunkedScanner.scan() leaves the bytes after the body unconsumed", () => {
  const body = bytes("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
  assert.deepEqual(new ChunkedScanner().scan(body, 0, body.length), { consumed: 15, done: true });
});

Deno.test("ChunkedScanner.scan() honours start and end inside a larger buffer", () => {
  const body = bytes("xxxx5\r\nhello\r\n0\r\n\r\nyyyy");
  assert.deepEqual(new ChunkedScanner().scan(body, 4, body.length), { consumed: 15, done: true });
  assert.deepEqual(new ChunkedScanner().scan(body, 4, 10), { consumed: 6, done: false });
});

Deno.test("ChunkedScanner.scan() follows a body fed one byte at a time", () => {
  const body = encodeChunked({
    chunks: [enc.encode("abc"), new Uint8Array(300)],
    extensions: [";a=1", ' ;b="x;y"', ";c"],
    trailers: ["Expires: never", "X-Sum:\tabc "],
  });
  const scanner = new ChunkedScanner();
  for (let i = 0; i < body.length; i++) {
    const r = scanner.scan(body, i, i + 1);
    assert.deepEqual(r, { consumed: 1, done: i === body.length - 1 }, `at byte ${i}`);
  }
  assert.equal(scanner.done, true);
});

Deno.test("ChunkedScanner.scan() accepts upper-case hex and leading zeros in chunk sizes", () => {
  const body = encodeChunked({ chunks: [new Uint8Array(0xab)], hexUpper: true });
  assert.deepEqual(scanAll(body), { consumed: body.length, done: true });
  assert.deepEqual(scanAll("0005\r\nhello\r\n000\r\n\r\n"), { consumed: 20, done: true });
});

Deno.test("ChunkedScanner.scan() accepts whitespace before a chunk extension (BWS)", () => {
  assert.deepEqual(scanAll("5 \t;ext\r\nhello\r\n0\r\n\r\n"), { consumed: 21, done: true });
});

Deno.test("ChunkedScanner.scan() accepts a size of exactly Number.MAX_SAFE_INTEGER", () => {
  const r = scanAll("1fffffffffffff\r\n");
  assert.deepEqual(r, { consumed: 16, done: false });
});

Deno.test("ChunkedScanner.scan() consumes nothing more once done", () => {
  const scanner = new ChunkedScanner();
  scanAll("0\r\n\r\n", scanner);
  const more = bytes("0\r\n\r\n");
  assert.deepEqual(scanner.scan(more, 0, more.length), { consumed: 0, done: true });
  assert.deepEqual(scanner.scan(more, 0, 0), { consumed: 0, done: true });
});

Deno.test("ChunkedScanner.scan() repeats its error on later calls", () => {
  const scanner = new ChunkedScanner();
  assert.deepEqual(scanAll("x\r\n", scanner), { error: "invalid chunk size" });
  assert.deepEqual(scanAll("0\r\n\r\n", scanner), { error: "invalid chunk size" });
});

Deno.test("ChunkedScanner.scan() throws RangeError for a range outside the buffer", () => {
  const scanner = new ChunkedScanner();
  assert.throws(() => scanner.scan(new Uint8Array(4), 0, 5), RangeError);
  assert.throws(() => scanner.scan(new Uint8Array(4), 3, 2), RangeError);
});

const MALFORMED: [string, string, string][] = [
  ["a plus sign before the size", "+5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  ["a minus sign before the size", "-1\r\nh\r\n0\r\n\r\n", "invalid chunk size"],
  ["whitespace before the size", " 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  ["a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  ["an empty size line", "\r\n5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  [
    "whitespace after the size without an extension",
    "5 \r\nhello\r\n0\r\n\r\n",
    "whitespace after chunk size",
  ],
  ["a non-hex byte after the size", "5g\r\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  ["17 hex digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "chunk size too large"],
  ["a size above Number.MAX_SAFE_INTEGER", "20000000000000\r\n", "chunk size too large"],
  ["a bare LF after the size", "5\nhello\r\n0\r\n\r\n", "invalid chunk size"],
  ["a bare CR after the size", "5\rhello\r\n0\r\n\r\n", "bare cr in chunk size line"],
  ["a bare LF in an extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", "invalid byte in chunk extension"],
  ["a NUL in an extension", "5;a\x00\r\nhello\r\n0\r\n\r\n", "invalid byte in chunk extension"],
  ["a DEL in an extension", "5;a\x7f\r\nhello\r\n0\r\n\r\n", "invalid byte in chunk extension"],
  [
    "chunk data longer than its size",
    "5\r\nhello!\r\n0\r\n\r\n",
    "chunk data not followed by crlf",
  ],
  ["chunk data shorter than its size", "5\r\nhell\r\n0\r\n\r\n", "chunk data not followed by crlf"],
  ["a bare LF after chunk data", "5\r\nhello\n0\r\n\r\n", "chunk data not followed by crlf"],
  ["a bare CR after chunk data", "5\r\nhello\r0\r\n\r\n", "chunk data not followed by crlf"],
  ["a bare LF as the final line", "0\r\n\n", "invalid trailer field"],
  ["a bare CR as the final line", "0\r\n\rX", "bare cr in trailer section"],
  ["an obs-fold trailer", "0\r\nA: b\r\n c\r\n\r\n", "obs-fold in trailer section"],
  ["a trailer without a colon", "0\r\nAb\r\n\r\n", "invalid trailer field"],
  ["whitespace before a trailer colon", "0\r\nA : b\r\n\r\n", "invalid trailer field"],
  ["a bare LF in a trailer value", "0\r\nA: b\nc\r\n\r\n", "invalid byte in trailer field"],
  ["a bare CR in a trailer value", "0\r\nA: b\rc\r\n\r\n", "bare cr in trailer section"],
  ["a NUL in a trailer value", "0\r\nA: \x00\r\n\r\n", "invalid byte in trailer field"],
];

for (const [what, input, reason] of MALFORMED) {
  Deno.test(`ChunkedScanner.scan() rejects ${what}`, () => {
    assert.deepEqual(scanAll(input), { error: reason });
    // The same verdict when the body arrives one byte at a time.
    const buf = bytes(input);
    const scanner = new ChunkedScanner();
    let last: ChunkedScanResult = { consumed: 0, done: false };
    for (let i = 0; i < buf.length && !("error" in last); i++) last = scanner.scan(buf, i, i + 1);
    assert.deepEqual(last, { error: reason });
  });
}

Deno.test("ChunkedScanner.scan() rejects a chunk-size line longer than maxChunkLineBytes", () => {
  const limits = { maxChunkLineBytes: 16 };
  const ok = `5;${"a".repeat(14)}\r\nhello\r\n0\r\n\r\n`; // 16 bytes before CRLF
  assert.deepEqual(scanAll(ok, new ChunkedScanner(limits)), { consumed: ok.length, done: true });
  const long = `5;${"a".repeat(15)}\r\nhello\r\n0\r\n\r\n`;
  assert.deepEqual(scanAll(long, new ChunkedScanner(limits)), {
    error: "chunk size line too long",
  });
  assert.deepEqual(scanAll(`${"0".repeat(20)}\r\n`, new ChunkedScanner({ maxChunkLineBytes: 8 })), {
    error: "chunk size line too long",
  });
});

Deno.test("ChunkedScanner.scan() caps chunk extensions at 4096 bytes by default", () => {
  const long = `5;${"a".repeat(5000)}\r\nhello\r\n0\r\n\r\n`;
  assert.deepEqual(scanAll(long), { error: "chunk size line too long" });
});

Deno.test("ChunkedScanner.scan() rejects a trailer section longer than maxTrailerBytes", () => {
  const limits = { maxTrailerBytes: 12 };
  const ok = "0\r\nA: 12345\r\n\r\n"; // 12 bytes after the last-chunk line
  assert.deepEqual(scanAll(ok, new ChunkedScanner(limits)), { consumed: ok.length, done: true });
  const long = "0\r\nA: 123456\r\n\r\n";
  assert.deepEqual(scanAll(long, new ChunkedScanner(limits)), {
    error: "trailer section too large",
  });
});

const chunkArb = fc.uint8Array({ minLength: 1, maxLength: 70 });
const extArb = fc.constantFrom("", ";a", ";a=b", ' ;q="x y"', "\t;z=1;y");
const trailerArb = fc.constantFrom("X-A: 1", 'Etag:\t"abc"', "Y:", "Sig: \xff\x80");
const specArb = fc.record({
  chunks: fc.array(chunkArb, { maxLength: 6 }),
  extensions: fc.array(extArb, { minLength: 7, maxLength: 7 }),
  trailers: fc.array(trailerArb, { maxLength: 3 }),
  hexUpper: fc.boolean(),
});

Deno.test("ChunkedScanner.scan() finds the exact end of random bodies split at random points", () => {
  fc.assert(
    fc.property(
      specArb,
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.uint8Array({ maxLength: 8 }),
      (spec, cuts, after) => {
        const body = encodeChunked(spec);
        const buf = new Uint8Array(body.length + after.length);
        buf.set(body);
        buf.set(after, body.length);
        const results = scanSplit(new ChunkedScanner(), buf, cuts);
        let total = 0;
        results.forEach((r, i) => {
          assert.ok(!("error" in r), `unexpected ${JSON.stringify(r)}`);
          total += r.consumed;
          assert.equal(r.done, i === results.length - 1, "done only on the last call");
        });
        assert.equal(total, body.length);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("ChunkedScanner.scan() never throws on randomly mutated bodies", () => {
  fc.assert(
    fc.property(
      specArb,
      fc.array(
        fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.constantFrom("set", "insert", "delete")),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      fc.array(fc.nat(), { maxLength: 6 }),
      (spec, mutations, cuts) => {
        const body = [...encodeChunked(spec)];
        for (const [at, byte, op] of mutations) {
          const i = at % (body.length + 1);
          if (op === "set" && i < body.length) body[i] = byte;
          else if (op === "insert") body.splice(i, 0, byte);
          else if (op === "delete") body.splice(i, 1);
        }
        const buf = Uint8Array.from(body);
        const results = scanSplit(new ChunkedScanner(), buf, cuts);
        let total = 0;
        for (const r of results) if (!("error" in r)) total += r.consumed;
        assert.ok(total <= buf.length);
      },
    ),
    { numRuns: 1000 },
  );
});
