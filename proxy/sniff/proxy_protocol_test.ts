import { deepEqual, equal, ok } from "node:assert/strict";
import {
  decodeProxyHeader,
  encodeProxyHeader,
  ipv6Bytes,
  type ProxyDecode,
  V2_MAX,
} from "./proxy_protocol.ts";

const client4 = { ip: "192.0.2.10", port: 51234, family: 4 as const };
const local4 = { ip: "198.51.100.1", port: 443, family: 4 as const };
const client6 = { ip: "2001:db8::7", port: 40000, family: 6 as const };
const local6 = { ip: "::1", port: 8443, family: 6 as const };

Deno.test("encodeProxyHeader() writes a v1 TCP4 line for IPv4 peers", () => {
  const text = new TextDecoder().decode(encodeProxyHeader("v1", client4, local4));
  equal(text, "PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n");
});

Deno.test("encodeProxyHeader() writes a v1 TCP6 line and maps IPv4 when the families differ", () => {
  const text = new TextDecoder().decode(encodeProxyHeader("v1", client4, local6));
  equal(text, "PROXY TCP6 ::ffff:192.0.2.10 ::1 51234 8443\r\n");
});

Deno.test("encodeProxyHeader() writes a v2 header with the signature, family and addresses", () => {
  const h = encodeProxyHeader("v2", client4, local4);
  equal(h.length, 16 + 12);
  deepEqual([...h.subarray(0, 12)], [13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10]);
  equal(h[12], 0x21);
  equal(h[13], 0x11);
  equal((h[14] << 8) | h[15], 12);
  deepEqual([...h.subarray(16, 20)], [192, 0, 2, 10]);
  deepEqual([...h.subarray(20, 24)], [198, 51, 100, 1]);
  equal((h[24] << 8) | h[25], 51234);
  equal((h[26] << 8) | h[27], 443);
});

Deno.test("encodeProxyHeader() writes a v2 IPv6 header of 36 address bytes", () => {
  const h = encodeProxyHeader("v2", client6, local6);
  equal(h.length, 16 + 36);
  equal(h[13], 0x21);
  deepEqual([...h.subarray(16, 32)], [...ipv6Bytes("2001:db8::7")]);
  equal(h[47], 1); // ::1
  equal((h[48] << 8) | h[49], 40000);
});

Deno.test("ipv6Bytes() expands ::, leading and trailing groups and dotted IPv4 tails", () => {
  deepEqual([...ipv6Bytes("::")], new Array(16).fill(0));
  deepEqual([...ipv6Bytes("::1")], [...new Array(15).fill(0), 1]);
  deepEqual([...ipv6Bytes("fe80::")], [0xfe, 0x80, ...new Array(14).fill(0)]);
  deepEqual(
    [...ipv6Bytes("::ffff:1.2.3.4")],
    [...new Array(10).fill(0), 0xff, 0xff, 1, 2, 3, 4],
  );
  deepEqual(
    [...ipv6Bytes("1:2:3:4:5:6:7:8")],
    [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8],
  );
});

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const text = (s: string) => new TextEncoder().encode(s);

/**
 * Decodes `bytes` the way the reader does: starting from nothing, asking for what the decoder
 * says it needs and never more. Returns the result and checks that it never asked past the end
 * of a header (the client's own bytes follow it on the wire).
 */
function feed(bytes: Uint8Array): ProxyDecode {
  let length = 0;
  for (;;) {
    const got = decodeProxyHeader(bytes.subarray(0, length));
    if (got.kind !== "need") {
      if (got.kind === "header") equal(got.length, length, "read exactly the header");
      return got;
    }
    ok(got.bytes > 0);
    // A read may return fewer bytes than asked for: give what there is.
    const next = Math.min(length + got.bytes, bytes.length);
    if (next === length) return got;
    length = next;
  }
}

function originOf(bytes: Uint8Array) {
  const got = feed(bytes);
  if (got.kind !== "header") throw new Error(JSON.stringify(got));
  return got.origin;
}

function reasonOf(bytes: Uint8Array): string {
  const got = feed(bytes);
  if (got.kind !== "malformed") throw new Error(JSON.stringify(got));
  return got.reason;
}

Deno.test("decodeProxyHeader() reads what encodeProxyHeader() writes, v1 and v2, IPv4 and IPv6", () => {
  for (const version of ["v1", "v2"] as const) {
    for (const [src, dst] of [[client4, local4], [client6, local6]]) {
      const header = encodeProxyHeader(version, src, dst);
      // Followed by the client's own bytes, which must be left unread.
      const wire = new Uint8Array([...header, ...text("GET / HTTP/1.1\r\n")]);
      deepEqual(originOf(wire), {
        kind: "proxied",
        version: version === "v1" ? 1 : 2,
        source: src,
        destination: dst,
      });
    }
  }
});

Deno.test("decodeProxyHeader() gives IPv4-mapped addresses as IPv4 and IPv6 in RFC 5952 form", () => {
  const o = originOf(text("PROXY TCP6 ::ffff:192.0.2.1 2001:DB8:0:0:0:0:0:1 1 2\r\n"));
  deepEqual(o, {
    kind: "proxied",
    version: 1,
    source: { ip: "192.0.2.1", port: 1, family: 4 },
    destination: { ip: "2001:db8::1", port: 2, family: 6 },
  });
});

Deno.test("decodeProxyHeader() takes LOCAL, UNKNOWN, UNSPEC and UNIX as the real endpoints", () => {
  const v2 = (verCmd: number, fam: number, body: number[]) =>
    new Uint8Array([...SIG, verCmd, fam, body.length >> 8, body.length & 0xff, ...body]);
  deepEqual(originOf(v2(0x20, 0x00, [])), { kind: "local", version: 2, why: "LOCAL" });
  // LOCAL ignores whatever address block follows, as the spec says.
  deepEqual(originOf(v2(0x20, 0x11, new Array(12).fill(7))), {
    kind: "local",
    version: 2,
    why: "LOCAL",
  });
  deepEqual(originOf(v2(0x21, 0x00, [])), { kind: "local", version: 2, why: "UNSPEC" });
  deepEqual(originOf(v2(0x21, 0x31, new Array(216).fill(0))), {
    kind: "local",
    version: 2,
    why: "UNIX",
  });
  deepEqual(originOf(text("PROXY UNKNOWN\r\n")), { kind: "local", version: 1, why: "UNKNOWN" });
  deepEqual(originOf(text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")), {
    kind: "local",
    version: 1,
    why: "UNKNOWN",
  });
});

Deno.test("decodeProxyHeader() skips v2 TLVs", () => {
  const h = encodeProxyHeader("v2", client4, local4);
  const tlv = [0x04, 0x00, 0x03, 0x61, 0x62, 0x63]; // PP2_TYPE_NOOP "abc"
  const len = ((h[14] << 8) | h[15]) + tlv.length;
  const wire = new Uint8Array([
    ...h.subarray(0, 14),
    len >> 8,
    len & 0xff,
    ...h.subarray(16),
    ...tlv,
  ]);
  equal(originOf(wire).kind, "proxied");
});

Deno.test("decodeProxyHeader() says a connection without a header starts with something else", () => {
  const hello = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
  const got = feed(hello);
  equal(got.kind, "malformed");
  if (got.kind === "malformed") {
    ok(got.missing);
    equal(
      got.reason,
      "no PROXY header: the connection starts with bytes 16 03 01 02 00 01 (a TLS handshake)",
    );
  }
  const http = decodeProxyHeader(text("GET / HTTP/1.1\r\n"));
  ok(http.kind === "malformed" && http.missing);
  // A prefix of either signature is not yet a verdict.
  for (const prefix of [text("PRO"), new Uint8Array(SIG.slice(0, 5)), new Uint8Array()]) {
    equal(decodeProxyHeader(prefix).kind, "need");
  }
});

Deno.test("decodeProxyHeader() refuses broken headers with a reason", () => {
  const cases: [string, string][] = [
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1 header has 7 fields, not 6"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1 header has 5 fields, not 6"],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 'v1 protocol "UDP4" is not TCP4, TCP6 or UNKNOWN'],
    ["PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 'v1 address "1.2.3.256" is not an IPv4 address'],
    ["PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 'v1 address "::1" is not an IPv4 address'],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 'v1 address "1.2.3.4" is not an IPv6 address'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 'v1 port "01" is not a decimal number from 0 to 65535'],
    [
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
      'v1 port "65536" is not a decimal number from 0 to 65535',
    ],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1 header ends in LF without CR"],
    [`PROXY TCP4 ${"1".repeat(120)}`, "v1 header has no CRLF within 107 bytes"],
  ];
  for (const [wire, reason] of cases) {
    const got = reasonOf(text(wire));
    ok(got.startsWith(reason), `${wire}: ${got}`);
  }
  const v2 = (bytes: number[]) => new Uint8Array([...SIG, ...bytes]);
  equal(reasonOf(v2([0x11, 0x11, 0, 0])), "v2 header has version 1, not 2");
  equal(reasonOf(v2([0x22, 0x11, 0, 0])), "v2 command 2 is neither LOCAL (0) nor PROXY (1)");
  equal(reasonOf(v2([0x21, 0x41, 0, 0])), "v2 address family byte 0x41 is unknown");
  equal(
    reasonOf(v2([0x21, 0x12, 0, 12, ...new Array(12).fill(0)])),
    "v2 header carries a UDP address on a TCP connection",
  );
  equal(
    reasonOf(v2([0x21, 0x21, 0, 12, ...new Array(12).fill(0)])),
    "v2 length 12 is too short for its IPv6 addresses",
  );
  const long = V2_MAX - 16 + 1;
  equal(
    reasonOf(v2([0x21, 0x11, long >> 8, long & 0xff])),
    `v2 header of ${V2_MAX + 1} bytes is longer than the ${V2_MAX} accepted`,
  );
});
