import { deepEqual, equal } from "node:assert/strict";
import { encodeProxyHeader, ipv6Bytes } from "./proxy_protocol.ts";

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
