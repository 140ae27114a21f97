/**
 * Unit and property tests of the ClientHello parser: recorded hellos from real clients, hellos
 * built field by field, every truncation and every malformed length.
 * Long because the parser is a security boundary and each field of its grammar gets its own
 * cases here, beside the code they pin.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ClientHelloInfo,
  type ClientHelloResult,
  MAX_HELLO_SIZE,
  maxHelloWireBytes,
  parseClientHello,
} from "./client_hello.ts";
import {
  alpnData,
  buildClientHello,
  concat,
  handshakeBytes,
  replaceExtension,
  serverNameData,
  splitRecords,
} from "../_testing/hello_builder.ts";

const HELLOS = new URL("../../testdata/hellos/", import.meta.url);

function capture(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, HELLOS));
}

function helloOf(r: ClientHelloResult): ClientHelloInfo {
  if (r.kind !== "hello") assert.fail(`expected a hello, got ${JSON.stringify(r)}`);
  return r.hello;
}

function reasonOf(r: ClientHelloResult): string {
  if (r.kind !== "malformed") assert.fail(`expected malformed, got ${JSON.stringify(r)}`);
  return r.reason;
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function u16(v: number): Uint8Array {
  return Uint8Array.of(v >> 8, v & 0xff);
}

/** Overwrite the handshake message's 24-bit length in a copy of a one-record hello. */
function withHandshakeLength(b: Uint8Array, len: number): Uint8Array {
  const c = b.slice();
  c[6] = len >> 16;
  c[7] = (len >> 8) & 0xff;
  c[8] = len & 0xff;
  return c;
}

/** Overwrite a big-endian uint16 in a copy of b. */
function withU16(b: Uint8Array, off: number, v: number): Uint8Array {
  const c = b.slice();
  c[off] = v >> 8;
  c[off + 1] = v & 0xff;
  return c;
}

/** A builder hello without server_name or ALPN whose extension `type` holds exactly `data`. */
function helloWithOnly(type: number, data: Uint8Array): Uint8Array {
  return replaceExtension(buildClientHello({ sni: null }), type, data);
}

function recordCount(b: Uint8Array): number {
  let n = 0;
  for (let off = 0; off + 5 <= b.length; n++) off += 5 + ((b[off + 3] << 8) | b[off + 4]);
  return n;
}

/** The hello a builder hello is expected to parse to, before end and records are known. */
function normalised(sni: string): string {
  const lower = sni.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

// Builder layout (record 5, handshake 4, version 2, random 32, session id 1+32, suites 2+6,
// compression 1+1): the extensions block length sits at 86, the first extension at 88.
const EXTS_LEN_AT = 86;
const FIRST_EXT_AT = 88;

const APP_DATA_RECORD = Uint8Array.of(23, 3, 3, 0, 4, 1, 2, 3, 4);

// ---------------------------------------------------------------------------------------------
// Captured hellos

const CAPTURES: {
  file: string;
  sni: string | null;
  alpn: string[];
  records: number;
  ech: boolean;
}[] = [
  { file: "openssl_s_client.bin", sni: "a.example.test", alpn: [], records: 1, ech: false },
  {
    file: "openssl_s_client_alpn.bin",
    sni: "a.example.test",
    alpn: ["h2", "http/1.1"],
    records: 1,
    ech: false,
  },
  { file: "openssl_s_client_nosni.bin", sni: null, alpn: [], records: 1, ech: false },
  {
    file: "openssl_s_client_upper_dot.bin",
    sni: "a.example.test",
    alpn: [],
    records: 1,
    ech: false,
  },
  { file: "openssl_s_client_split.bin", sni: "a.example.test", alpn: [], records: 3, ech: false },
  { file: "curl.bin", sni: "a.example.test", alpn: ["h2", "http/1.1"], records: 1, ech: false },
  {
    file: "deno_connect_tls.bin",
    sni: "a.example.test",
    alpn: ["h2", "http/1.1"],
    records: 1,
    ech: false,
  },
  {
    file: "chromium.bin",
    sni: "www.example.test",
    alpn: ["h2", "http/1.1"],
    records: 1,
    ech: true,
  },
];

for (const c of CAPTURES) {
  Deno.test(`parseClientHello() reads sni and alpn from the captured ${c.file}`, () => {
    const bytes = capture(c.file);
    const h = helloOf(parseClientHello(bytes));
    assert.deepEqual(h, {
      sni: c.sni,
      idn: false,
      alpn: c.alpn,
      end: bytes.length,
      records: c.records,
      legacyVersion: 0x0303,
      tls13: true,
      ech: c.ech,
    });
  });

  Deno.test(`parseClientHello() returns incomplete for every prefix of ${c.file}`, () => {
    const bytes = capture(c.file);
    for (let i = 0; i < bytes.length; i++) {
      assert.deepEqual(parseClientHello(bytes.subarray(0, i)), { kind: "incomplete" }, `at ${i}`);
    }
  });
}

Deno.test("parseClientHello() reads the 2 KB post-quantum Chromium hello whole", () => {
  const bytes = capture("chromium.bin");
  assert.ok(bytes.length > 1800, `chromium hello is ${bytes.length} bytes`);
  const h = helloOf(parseClientHello(bytes));
  assert.equal(h.ech, true);
  assert.equal(h.end, bytes.length);
});

Deno.test("parseClientHello() gives the captured split hello the same answer as one record", () => {
  const split = capture("openssl_s_client_split.bin");
  const joined = splitRecords(split, [1 << 16]);
  assert.equal(recordCount(joined), 1);
  const a = helloOf(parseClientHello(split));
  const b = helloOf(parseClientHello(joined));
  assert.deepEqual({ ...a, end: 0, records: 0 }, { ...b, end: 0, records: 0 });
  assert.equal(a.records, 3);
  assert.equal(b.records, 1);
});

// ---------------------------------------------------------------------------------------------
// First bytes

Deno.test("parseClientHello() returns incomplete for an empty buffer", () => {
  assert.deepEqual(parseClientHello(new Uint8Array(0)), { kind: "incomplete" });
});

Deno.test("parseClientHello() returns not-tls for plain HTTP, HTTP/2 preface and SSH", () => {
  for (const text of ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", "PRI * HTTP/2.0\r\n", "SSH-2.0-x\r\n"]) {
    assert.deepEqual(parseClientHello(ascii(text)), { kind: "not-tls" }, text);
  }
});

Deno.test("parseClientHello() returns not-tls for a TLS record that is not a handshake", () => {
  assert.deepEqual(parseClientHello(APP_DATA_RECORD), { kind: "not-tls" });
  assert.deepEqual(parseClientHello(Uint8Array.of(21, 3, 3, 0, 2, 2, 40)), { kind: "not-tls" });
});

Deno.test("parseClientHello() returns malformed for an SSLv2-style hello", () => {
  const v2 = Uint8Array.of(0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10);
  assert.equal(reasonOf(parseClientHello(v2)), "sslv2-style hello is not supported");
});

Deno.test("parseClientHello() waits for the third byte before calling a high-bit start sslv2", () => {
  assert.deepEqual(parseClientHello(Uint8Array.of(0x80)), { kind: "incomplete" });
  assert.deepEqual(parseClientHello(Uint8Array.of(0x80, 0x2e)), { kind: "incomplete" });
  // Not msg_type 1: some other binary protocol, left to the listener's fallback.
  assert.deepEqual(parseClientHello(Uint8Array.of(0x80, 0x2e, 0x07)), { kind: "not-tls" });
});

// ---------------------------------------------------------------------------------------------
// Record layer

Deno.test("parseClientHello() returns incomplete for a truncated record", () => {
  const h = buildClientHello();
  assert.deepEqual(parseClientHello(h.subarray(0, 3)), { kind: "incomplete" });
  assert.deepEqual(parseClientHello(h.subarray(0, 40)), { kind: "incomplete" });
  assert.deepEqual(parseClientHello(h.subarray(0, h.length - 1)), { kind: "incomplete" });
});

Deno.test("parseClientHello() returns malformed for a record version whose major is not 3", () => {
  const h = buildClientHello({ recordVersion: 0x0201 });
  assert.equal(reasonOf(parseClientHello(h)), "record version major 2 is not 3");
  // Decided as soon as the byte is there.
  assert.equal(parseClientHello(h.subarray(0, 2)).kind, "malformed");
});

Deno.test("parseClientHello() accepts any record version minor with major 3", () => {
  for (const v of [0x0300, 0x0301, 0x0303, 0x0304]) {
    assert.equal(parseClientHello(buildClientHello({ recordVersion: v })).kind, "hello");
  }
});

Deno.test("parseClientHello() returns malformed for an empty handshake record", () => {
  const h = splitRecords(buildClientHello(), [0]);
  assert.equal(reasonOf(parseClientHello(h)), "empty handshake record");
});

Deno.test("parseClientHello() returns malformed for a record longer than 2^14", () => {
  const h = buildClientHello({ padTo: 20000 });
  assert.equal(reasonOf(parseClientHello(h)), "record length 20000 exceeds 16384");
});

Deno.test("parseClientHello() returns malformed for a record length that runs past the hello", () => {
  // The record claims 10 more bytes than the handshake message: the client sent something
  // after its hello in the same record.
  const h = buildClientHello();
  const lying = concat(withU16(h, 3, h.length - 5 + 10), new Uint8Array(10));
  assert.match(reasonOf(parseClientHello(lying)), /record carries 10 bytes after the client hello/);
  // The same answer before those bytes arrive: the header says it all.
  assert.equal(parseClientHello(lying.subarray(0, 20)).kind, "malformed");
});

Deno.test("parseClientHello() returns malformed for a record length shorter than the hello", () => {
  // The record ends early and what follows is not a handshake record.
  const h = buildClientHello();
  const lying = withU16(h, 3, h.length - 5 - 20);
  assert.match(reasonOf(parseClientHello(lying)), /record of type \d+ inside the client hello/);
});

Deno.test("parseClientHello() returns malformed for a handshake length that lies short", () => {
  const h = buildClientHello();
  const lying = withHandshakeLength(h, h.length - 9 - 7);
  assert.match(reasonOf(parseClientHello(lying)), /record carries 7 bytes after the client hello/);
});

Deno.test("parseClientHello() waits when the handshake length says more is to come", () => {
  // A longer handshake length is only a hello that has not fully arrived.
  const h = buildClientHello();
  const lying = withHandshakeLength(h, h.length - 9 + 10);
  assert.deepEqual(parseClientHello(lying), { kind: "incomplete" });
  // If the record ends there and something else follows, it is malformed.
  assert.equal(parseClientHello(concat(lying, APP_DATA_RECORD)).kind, "malformed");
});

Deno.test("parseClientHello() returns malformed for a handshake that is not client_hello", () => {
  const h = buildClientHello();
  h[5] = 2;
  assert.equal(reasonOf(parseClientHello(h)), "handshake type 2 is not client_hello");
});

Deno.test("parseClientHello() returns malformed for an alert between the hello's records", () => {
  const h = splitRecords(buildClientHello(), [100]);
  const cut = 105;
  const alert = Uint8Array.of(21, 3, 3, 0, 2, 2, 40);
  const broken = concat(h.subarray(0, cut), alert, h.subarray(cut));
  assert.equal(reasonOf(parseClientHello(broken)), "record of type 21 inside the client hello");
});

Deno.test("parseClientHello() returns malformed for a second handshake message in the record", () => {
  const h = buildClientHello();
  const msg = handshakeBytes(h);
  const extra = Uint8Array.of(20, 0, 0, 0);
  const two = concat(Uint8Array.of(22, 3, 1), u16(msg.length + extra.length), msg, extra);
  assert.match(reasonOf(parseClientHello(two)), /record carries 4 bytes after the client hello/);
});

// ---------------------------------------------------------------------------------------------
// Fragmentation and trailing bytes

Deno.test("parseClientHello() gives a hello split over 3 records the one-record result", () => {
  const one = buildClientHello({ sni: "b.example.test", alpn: ["h2", "http/1.1"], padTo: 600 });
  const three = splitRecords(one, [200, 200]);
  assert.equal(recordCount(three), 3);
  const a = helloOf(parseClientHello(one));
  const b = helloOf(parseClientHello(three));
  assert.equal(b.records, 3);
  assert.equal(b.end, three.length);
  assert.deepEqual({ ...b, end: a.end, records: 1 }, a);
});

Deno.test("parseClientHello() reads a handshake header split over several records", () => {
  const h = splitRecords(buildClientHello({ sni: "c.example.test" }), [1, 1, 1, 1]);
  const info = helloOf(parseClientHello(h));
  assert.equal(info.sni, "c.example.test");
  assert.equal(info.records, 5);
  for (let i = 0; i < h.length; i++) {
    assert.deepEqual(parseClientHello(h.subarray(0, i)), { kind: "incomplete" }, `at ${i}`);
  }
});

Deno.test("parseClientHello() ignores 0-RTT bytes after the hello and points end at them", () => {
  for (
    const hello of [buildClientHello({ alpn: ["h2"] }), splitRecords(buildClientHello(), [90])]
  ) {
    const alone = helloOf(parseClientHello(hello));
    const withData = helloOf(parseClientHello(concat(hello, APP_DATA_RECORD)));
    assert.deepEqual(withData, alone);
    assert.equal(withData.end, hello.length);
    // Even a partial record after the hello changes nothing.
    assert.deepEqual(helloOf(parseClientHello(concat(hello, Uint8Array.of(23, 3)))), alone);
  }
});

// ---------------------------------------------------------------------------------------------
// Size caps

Deno.test("parseClientHello() returns malformed for a 64 KiB hello", () => {
  const h = buildClientHello({ padTo: 65536 });
  assert.equal(recordCount(h), 4);
  assert.equal(reasonOf(parseClientHello(h)), "hello length 65532 exceeds cap 16384");
  // Decided from the handshake header, without waiting for the rest.
  assert.equal(
    reasonOf(parseClientHello(h.subarray(0, 9))),
    "hello length 65532 exceeds cap 16384",
  );
});

Deno.test("parseClientHello() accepts a hello of exactly the cap and refuses one byte more", () => {
  const at = splitRecords(buildClientHello({ padTo: MAX_HELLO_SIZE + 4 }), [16384]);
  assert.equal(parseClientHello(at).kind, "hello");
  const over = splitRecords(buildClientHello({ padTo: MAX_HELLO_SIZE + 5 }), [16384]);
  assert.equal(reasonOf(parseClientHello(over)), "hello length 16385 exceeds cap 16384");
});

Deno.test("parseClientHello() honours a smaller maxSize", () => {
  const h = buildClientHello({ padTo: 600 });
  assert.equal(reasonOf(parseClientHello(h, 500)), "hello length 596 exceeds cap 500");
  assert.equal(parseClientHello(h, 596).kind, "hello");
});

Deno.test("parseClientHello() refuses a big hello cut into tiny records instead of waiting", () => {
  const tiny = splitRecords(buildClientHello({ padTo: 8000 }), new Array(8000).fill(1));
  const r = parseClientHello(tiny);
  assert.match(reasonOf(r), /hello needs more than \d+ bytes of records/);
  assert.equal(parseClientHello(tiny.subarray(0, maxHelloWireBytes())).kind, "malformed");
});

Deno.test("parseClientHello() never answers incomplete once maxHelloWireBytes() are in", () => {
  const limit = maxHelloWireBytes(2000);
  const shapes = [
    splitRecords(buildClientHello({ padTo: 1900 }), new Array(2000).fill(1)),
    splitRecords(buildClientHello({ padTo: 1990 }), new Array(2000).fill(7)),
    concat(Uint8Array.of(22, 3, 1, 0, 4, 1, 0, 0x07, 0xd0), new Uint8Array(limit)),
  ];
  for (const b of shapes) {
    assert.ok(b.length >= limit);
    assert.notEqual(parseClientHello(b.subarray(0, limit), 2000).kind, "incomplete");
  }
});

// ---------------------------------------------------------------------------------------------
// ClientHello body

/** A TLS 1.0-style hello: no extensions block at all. */
function helloWithoutExtensions(): Uint8Array {
  const body = concat(
    u16(0x0301),
    new Uint8Array(32),
    Uint8Array.of(0),
    u16(4),
    u16(0x002f),
    u16(0x0035),
    Uint8Array.of(1, 0),
  );
  const msg = concat(Uint8Array.of(1, 0), u16(body.length), body);
  return concat(Uint8Array.of(22, 3, 1), u16(msg.length), msg);
}

Deno.test("parseClientHello() accepts a TLS 1.0-style hello without extensions", () => {
  const h = helloWithoutExtensions();
  assert.deepEqual(helloOf(parseClientHello(h)), {
    sni: null,
    idn: false,
    alpn: [],
    end: h.length,
    records: 1,
    legacyVersion: 0x0301,
    tls13: false,
    ech: false,
  });
});

Deno.test("parseClientHello() accepts an empty extensions block", () => {
  const h = concat(helloWithoutExtensions(), u16(0));
  const fixed = withHandshakeLength(withU16(h, 3, h.length - 5), h.length - 9);
  assert.equal(helloOf(parseClientHello(fixed)).sni, null);
});

Deno.test("parseClientHello() returns malformed for a hello shorter than its fixed fields", () => {
  const msg = concat(Uint8Array.of(1, 0, 0, 10), new Uint8Array(10));
  const h = concat(Uint8Array.of(22, 3, 1), u16(msg.length), msg);
  assert.equal(reasonOf(parseClientHello(h)), "client hello shorter than its fixed fields");
});

Deno.test("parseClientHello() returns malformed for a session id longer than 32", () => {
  const h = buildClientHello();
  h[43] = 33;
  assert.equal(reasonOf(parseClientHello(h)), "session id length 33 exceeds 32");
});

Deno.test("parseClientHello() returns malformed for odd or empty cipher suites", () => {
  const h = buildClientHello();
  assert.match(reasonOf(parseClientHello(withU16(h, 76, 5))), /cipher suites length 5/);
  assert.match(reasonOf(parseClientHello(withU16(h, 76, 0))), /cipher suites length 0/);
  assert.equal(
    reasonOf(parseClientHello(withU16(h, 76, 0xfffe))),
    "cipher suites overrun the hello",
  );
});

Deno.test("parseClientHello() returns malformed for no compression methods", () => {
  const h = buildClientHello();
  h[84] = 0;
  assert.equal(reasonOf(parseClientHello(h)), "no compression methods");
});

Deno.test("parseClientHello() returns malformed for an extensions length that lies", () => {
  const h = buildClientHello();
  const real = (h[EXTS_LEN_AT] << 8) | h[EXTS_LEN_AT + 1];
  assert.equal(real, h.length - FIRST_EXT_AT);
  for (const lie of [real - 1, real + 1, 0, 0xffff]) {
    assert.match(
      reasonOf(parseClientHello(withU16(h, EXTS_LEN_AT, lie))),
      /extensions length \d+ does not match/,
    );
  }
});

Deno.test("parseClientHello() returns malformed for an extension length that overruns", () => {
  const h = buildClientHello();
  assert.equal((h[FIRST_EXT_AT] << 8) | h[FIRST_EXT_AT + 1], 0); // server_name comes first
  assert.equal(
    reasonOf(parseClientHello(withU16(h, FIRST_EXT_AT + 2, 0xffff))),
    "extension 0 length 65535 overruns the hello",
  );
});

Deno.test("parseClientHello() returns malformed for trailing bytes after the extensions", () => {
  const h = buildClientHello();
  const real = (h[EXTS_LEN_AT] << 8) | h[EXTS_LEN_AT + 1];
  // Shrink the block by 3 bytes: the last 3 bytes of the hello become garbage.
  const r = parseClientHello(withU16(h, EXTS_LEN_AT, real - 3));
  assert.match(reasonOf(r), /does not match the \d+ bytes left/);
});

Deno.test("parseClientHello() returns malformed for duplicate extensions", () => {
  const dupSni = buildClientHello({
    extraExtensions: [{ type: 0, data: serverNameData("b.example.test") }],
  });
  assert.equal(reasonOf(parseClientHello(dupSni)), "duplicate extension 0");
  const dupOther = buildClientHello({
    extraExtensions: [{ type: 0x1234, data: new Uint8Array(0) }, {
      type: 0x1234,
      data: new Uint8Array(0),
    }],
  });
  assert.equal(reasonOf(parseClientHello(dupOther)), "duplicate extension 4660");
});

Deno.test("parseClientHello() finds a duplicate among thousands of empty extensions", () => {
  const many = [];
  for (let t = 100; t < 3100; t++) many.push({ type: t, data: new Uint8Array(0) });
  const ok = splitRecords(buildClientHello({ extraExtensions: many }), [16384]);
  assert.equal(parseClientHello(ok).kind, "hello");
  many.push({ type: 100, data: new Uint8Array(0) });
  const dup = splitRecords(buildClientHello({ extraExtensions: many }), [16384]);
  assert.equal(reasonOf(parseClientHello(dup)), "duplicate extension 100");
});

Deno.test("parseClientHello() sees the same extension types afresh in each call", () => {
  const h = buildClientHello({ alpn: ["h2"] });
  for (let i = 0; i < 70000; i++) {
    if (parseClientHello(h).kind !== "hello") assert.fail(`call ${i} saw a duplicate`);
  }
});

// ---------------------------------------------------------------------------------------------
// server_name

function sniOf(name: string): ClientHelloResult {
  return parseClientHello(buildClientHello({ sni: name }));
}

Deno.test("parseClientHello() lowercases the server name and drops one trailing dot", () => {
  assert.equal(helloOf(sniOf("WWW.Example.TEST.")).sni, "www.example.test");
  assert.equal(helloOf(sniOf("a-b_c.d9")).sni, "a-b_c.d9");
  assert.equal(helloOf(sniOf("localhost")).sni, "localhost");
});

Deno.test("parseClientHello() returns null sni when the client sent no server_name", () => {
  const h = helloOf(parseClientHello(buildClientHello({ sni: null })));
  assert.equal(h.sni, null);
});

Deno.test("parseClientHello() returns malformed for empty labels in the server name", () => {
  for (const name of ["a..b", ".", "..", ".a", "a..", "a.b.."]) {
    assert.equal(reasonOf(sniOf(name)), "server name has an empty label", name);
  }
});

Deno.test("parseClientHello() returns malformed for an empty server name", () => {
  assert.equal(reasonOf(sniOf("")), "empty server name");
});

Deno.test("parseClientHello() returns malformed for characters outside letters, digits, -_.", () => {
  for (const name of ["a b", "*.example", "[::1]", "a:443", "a\0b", "a/b", "a\x7f"]) {
    assert.equal(reasonOf(sniOf(name)), "invalid character in server name", JSON.stringify(name));
  }
});

/** A name as its UTF-8 bytes, one char per byte (the builder writes char codes as bytes). */
function utf8(name: string): string {
  return String.fromCharCode(...new TextEncoder().encode(name));
}

Deno.test("parseClientHello() routes a raw UTF-8 server name as its A-label", () => {
  const cases: [string, string][] = [
    ["bücher.example.test", "xn--bcher-kva.example.test"],
    ["BÜCHER.Example.TEST.", "xn--bcher-kva.example.test"],
    ["a.bücher.example.test", "a.xn--bcher-kva.example.test"],
    ["münchen.de", "xn--mnchen-3ya.de"],
    ["例え.テスト", "xn--r8jz45g.xn--zckzah"],
    // UTS #46 maps the ideographic full stop to a dot, as browsers do.
    ["bücher。example.test", "xn--bcher-kva.example.test"],
  ];
  for (const [sent, routed] of cases) {
    const h = helloOf(sniOf(utf8(sent)));
    assert.equal(h.sni, routed, sent);
    assert.equal(h.idn, true, sent);
  }
  // A name sent in A-labels is not marked: only a raw UTF-8 one is.
  assert.equal(helloOf(sniOf("xn--bcher-kva.example.test")).idn, false);
});

Deno.test("parseClientHello() refuses invalid UTF-8 and names that fail IDNA, with a reason", () => {
  const notUtf8 = "server name is neither ASCII nor valid UTF-8";
  for (const bytes of ["\xe9.test", "b\xc3.test", "\xc3\x28.test", "\xed\xa0\x80.test", "\xff"]) {
    assert.equal(reasonOf(sniOf(bytes)), notUtf8, JSON.stringify(bytes));
  }
  const idna = "server name is not a valid internationalized domain name (IDNA)";
  // A zero-width joiner alone, and a label that is not valid Punycode next to a U-label.
  for (const name of ["\u200d.test", "xn--zz.bücher.test"]) {
    assert.equal(reasonOf(sniOf(utf8(name))), idna, JSON.stringify(name));
  }
  // What IDNA lets through must still be a DNS name: no spaces, slashes or empty labels.
  for (const name of ["bü cher.test", "bü/cher.test", "bü:443"]) {
    assert.equal(reasonOf(sniOf(utf8(name))), "invalid character in server name", name);
  }
  assert.equal(reasonOf(sniOf(utf8("a..bü.test"))), "server name has an empty label");
  const long = `${"ü".repeat(60)}.${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(60)}`;
  assert.equal(reasonOf(sniOf(utf8(long))), "server name longer than 253 bytes");
});

Deno.test("parseClientHello() accepts a 253-byte name and refuses 254", () => {
  const label = "a".repeat(63);
  const n253 = [label, label, label, "a".repeat(61)].join(".");
  assert.equal(n253.length, 253);
  assert.equal(helloOf(sniOf(n253)).sni, n253);
  assert.equal(helloOf(sniOf(n253 + ".")).sni, n253);
  assert.equal(reasonOf(sniOf(n253 + "a")), "server name longer than 253 bytes");
});

Deno.test("parseClientHello() returns malformed for two host_name entries", () => {
  const h = helloWithOnly(0, serverNameData("a.example.test", "b.example.test"));
  assert.equal(reasonOf(parseClientHello(h)), "more than one host_name in server_name");
});

Deno.test("parseClientHello() skips server_name entries of unknown name type", () => {
  const other = concat(Uint8Array.of(7), u16(3), ascii("xyz"));
  const host = serverNameData("a.example.test").subarray(2);
  const list = concat(other, host);
  const h = helloWithOnly(0, concat(u16(list.length), list));
  assert.equal(helloOf(parseClientHello(h)).sni, "a.example.test");
  const onlyOther = helloWithOnly(0, concat(u16(other.length), other));
  assert.equal(helloOf(parseClientHello(onlyOther)).sni, null);
});

Deno.test("parseClientHello() returns malformed for server name lengths that lie", () => {
  const good = serverNameData("a.example.test");
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /server_name extension cut short/],
    [u16(0), /empty server name list/],
    [withU16(good, 0, good.length - 1), /server name list length \d+ does not match/],
    [withU16(good, 0, good.length + 1), /server name list length \d+ does not match/],
    [withU16(good, 3, 200), /server name overruns its list/],
    [concat(u16(2), Uint8Array.of(0, 0)), /server name entry cut short/],
  ];
  for (const [data, reason] of cases) {
    assert.match(reasonOf(parseClientHello(helloWithOnly(0, data))), reason);
  }
});

// ---------------------------------------------------------------------------------------------
// ALPN, supported_versions, ECH

Deno.test("parseClientHello() returns ALPN protocols in client order", () => {
  const alpn = ["http/1.1", "h2", "acme-tls/1", "h3"];
  assert.deepEqual(helloOf(parseClientHello(buildClientHello({ alpn }))).alpn, alpn);
});

Deno.test("parseClientHello() decodes ALPN names byte for byte as latin1", () => {
  const name = "\xe9\x01\xff";
  assert.deepEqual(helloOf(parseClientHello(helloWithOnly(16, alpnData([name])))).alpn, [name]);
});

Deno.test("parseClientHello() keeps ALPN names with control, C1, quote and backslash bytes, and GREASE", () => {
  // Any byte is allowed (RFC 7301 §3.1); the log escapes them (proxy/observe/log_test.ts).
  const names = ["\x85", "h2\x9b31m", "\x1b[2J", "a\r\nb", '"q"', "back\\slash", "\x0a\x0a", "h2"];
  assert.deepEqual(helloOf(parseClientHello(buildClientHello({ alpn: names }))).alpn, names);
  assert.deepEqual(
    helloOf(parseClientHello(helloWithOnly(16, alpnData(names)))).alpn,
    names,
  );
});

Deno.test("parseClientHello() returns malformed for ALPN lengths that lie", () => {
  const good = alpnData(["h2", "http/1.1"]);
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(1), /alpn extension cut short/],
    [u16(0), /alpn list is empty/],
    [withU16(good, 0, good.length), /alpn list length \d+ does not match/],
    [concat(u16(3), Uint8Array.of(0, 0x68, 0x32)), /empty alpn protocol name/],
    [concat(u16(3), Uint8Array.of(5, 0x68, 0x32)), /alpn protocol name overruns its list/],
  ];
  for (const [data, reason] of cases) {
    assert.match(reasonOf(parseClientHello(helloWithOnly(16, data))), reason);
  }
});

Deno.test("parseClientHello() sets tls13 only when supported_versions lists 0x0304", () => {
  const only12 = helloWithOnly(43, Uint8Array.of(2, 3, 3));
  assert.equal(helloOf(parseClientHello(only12)).tls13, false);
  const grease13 = helloWithOnly(43, Uint8Array.of(4, 0x3a, 0x3a, 3, 4));
  assert.equal(helloOf(parseClientHello(grease13)).tls13, true);
  assert.equal(helloOf(parseClientHello(buildClientHello())).tls13, true);
});

Deno.test("parseClientHello() returns malformed for supported_versions lengths that lie", () => {
  const cases: [Uint8Array, RegExp][] = [
    [Uint8Array.of(), /supported_versions extension cut short/],
    [Uint8Array.of(3, 3, 4, 3), /supported_versions length 3 is not a non-zero even number/],
    [Uint8Array.of(0), /supported_versions length 0 is not a non-zero even number/],
    [Uint8Array.of(4, 3, 4), /supported_versions length 4 does not match/],
  ];
  for (const [data, reason] of cases) {
    assert.match(reasonOf(parseClientHello(helloWithOnly(43, data))), reason);
  }
});

Deno.test("parseClientHello() sets ech when encrypted_client_hello is present", () => {
  assert.equal(helloOf(parseClientHello(helloWithOnly(0xfe0d, Uint8Array.of(0)))).ech, true);
  assert.equal(helloOf(parseClientHello(buildClientHello())).ech, false);
});

// ---------------------------------------------------------------------------------------------
// Properties

const LDH = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"];
const labelArb = fc.string({ unit: fc.constantFrom(...LDH), minLength: 1, maxLength: 20 });
const sniArb = fc.tuple(fc.array(labelArb, { minLength: 1, maxLength: 6 }), fc.boolean())
  .map(([labels, dot]) => labels.join(".") + (dot ? "." : ""));
const alpnArb = fc.array(
  fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => String.fromCharCode(...b)),
  { maxLength: 5 },
);
const helloArb = fc.record({
  sni: fc.option(sniArb, { nil: null }),
  alpn: alpnArb,
  padTo: fc.option(fc.integer({ min: 0, max: 2500 }), { nil: undefined }),
  keyShareBytes: fc.constantFrom(32, 65, 1216),
});
const sizesArb = fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 24 });
const KINDS = new Set(["incomplete", "not-tls", "malformed", "hello"]);

function assertSane(buf: Uint8Array, r: ClientHelloResult): void {
  assert.ok(KINDS.has(r.kind));
  if (r.kind === "malformed") assert.ok(r.reason.length > 0);
  if (r.kind === "hello") {
    const h = r.hello;
    assert.ok(h.end <= buf.length && h.records >= 1);
    if (h.sni !== null) {
      assert.ok(h.sni.length >= 1 && h.sni.length <= 253);
      assert.ok(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(h.sni), h.sni);
    }
  }
}

Deno.test("parseClientHello() gives any re-fragmentation of a hello the one-record result", () => {
  fc.assert(
    fc.property(helloArb, sizesArb, (opts, sizes) => {
      const one = buildClientHello(opts);
      const single = helloOf(parseClientHello(one));
      assert.equal(single.sni, opts.sni === null ? null : normalised(opts.sni));
      assert.deepEqual(single.alpn, opts.alpn);
      assert.equal(single.end, one.length);
      const split = splitRecords(one, sizes);
      const multi = helloOf(parseClientHello(split));
      assert.equal(multi.end, split.length);
      assert.equal(multi.records, recordCount(split));
      assert.deepEqual({ ...multi, end: single.end, records: 1 }, single);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("parseClientHello() returns incomplete for every proper prefix of a valid hello", () => {
  fc.assert(
    fc.property(helloArb, sizesArb, fc.double({ min: 0, max: 1, noNaN: true }), (o, s, at) => {
      const split = splitRecords(buildClientHello(o), s);
      const cut = Math.min(split.length - 1, Math.floor(at * split.length));
      assert.deepEqual(parseClientHello(split.subarray(0, cut)), { kind: "incomplete" });
    }),
    { numRuns: 2000 },
  );
});

const capturedArb = fc.constantFrom(...CAPTURES.map((c) => c.file)).map(capture);
const baseArb = fc.oneof(
  capturedArb,
  fc.tuple(helloArb, sizesArb).map(([o, s]) => splitRecords(buildClientHello(o), s)),
);
const editArb = fc.oneof(
  fc.record({
    op: fc.constant("set" as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ op: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ maxLength: 8 }),
  }),
  fc.record({
    op: fc.constant("drop" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 8 }),
  }),
);
type Edit =
  | { op: "set"; at: number; value: number }
  | { op: "cut"; at: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "drop"; at: number; count: number };

function applyEdit(b: Uint8Array, e: Edit): Uint8Array {
  const at = b.length === 0 ? 0 : e.at % (b.length + 1);
  switch (e.op) {
    case "set": {
      if (at >= b.length) return b;
      const c = b.slice();
      c[at] = e.value;
      return c;
    }
    case "cut":
      return b.subarray(0, at);
    case "insert":
      return concat(b.subarray(0, at), e.bytes, b.subarray(at));
    case "drop":
      return concat(b.subarray(0, at), b.subarray(at + e.count));
  }
}

Deno.test("parseClientHello() never throws on mutated, cut or padded hellos", () => {
  fc.assert(
    fc.property(baseArb, fc.array(editArb, { minLength: 1, maxLength: 4 }), (base, edits) => {
      let b = base;
      for (const e of edits) b = applyEdit(b, e);
      assertSane(b, parseClientHello(b));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseClientHello() never throws on random bytes", () => {
  const tlsLike = fc.tuple(
    fc.constantFrom(22, 0x80),
    fc.uint8Array({ maxLength: 2048 }),
  ).map(([b0, rest]) => concat(Uint8Array.of(b0, 3, 1), rest));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), tlsLike), (b) => {
      assertSane(b, parseClientHello(b));
    }),
    { numRuns: 2000 },
  );
});
