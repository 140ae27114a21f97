/**
 * PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2), written to a server
 * before any client byte so the server learns the real client address through passthrough.
 *
 * @module
 */

import type { PeerAddress } from "./net.ts";

/** The 12-byte signature that starts every version 2 header. */
const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/**
 * Builds a PROXY header for a TCP connection from `source` (the client) to `destination` (the
 * address it connected to). When the two differ in family, both are written as IPv6, with an
 * IPv4 address in its `::ffff:` mapped form, as the spec asks.
 */
export function encodeProxyHeader(
  version: "v1" | "v2",
  source: PeerAddress,
  destination: PeerAddress,
): Uint8Array {
  const v4 = source.family === 4 && destination.family === 4;
  const src = v4 ? source.ip : toIPv6Text(source);
  const dst = v4 ? destination.ip : toIPv6Text(destination);
  if (version === "v1") {
    return new TextEncoder().encode(
      `PROXY ${v4 ? "TCP4" : "TCP6"} ${src} ${dst} ${source.port} ${destination.port}\r\n`,
    );
  }
  const addrLength = v4 ? 12 : 36;
  const out = new Uint8Array(16 + addrLength);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  out[14] = addrLength >> 8;
  out[15] = addrLength & 0xff;
  const addrBytes = v4 ? 4 : 16;
  out.set(v4 ? ipv4Bytes(src) : ipv6Bytes(src), 16);
  out.set(v4 ? ipv4Bytes(dst) : ipv6Bytes(dst), 16 + addrBytes);
  const ports = 16 + 2 * addrBytes;
  out[ports] = source.port >> 8;
  out[ports + 1] = source.port & 0xff;
  out[ports + 2] = destination.port >> 8;
  out[ports + 3] = destination.port & 0xff;
  return out;
}

function toIPv6Text(a: PeerAddress): string {
  return a.family === 6 ? a.ip : `::ffff:${a.ip}`;
}

function ipv4Bytes(ip: string): Uint8Array {
  return new Uint8Array(ip.split(".").map(Number));
}

/** The 16 bytes of an IPv6 address in text form, including `::` and a dotted IPv4 tail. */
export function ipv6Bytes(ip: string): Uint8Array {
  let text = ip;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    // "::ffff:1.2.3.4" → "::ffff:102:304": the dotted tail is the last two groups.
    const b = ipv4Bytes(tail);
    text = `${text.slice(0, lastColon + 1)}${((b[0] << 8) | b[1]).toString(16)}:${
      ((b[2] << 8) | b[3]).toString(16)
    }`;
  }
  const halves = text.split("::");
  const groupsOf = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const head = groupsOf(halves[0]);
  const rest = halves.length > 1 ? groupsOf(halves[1]) : [];
  const groups = [...head, ...new Array(8 - head.length - rest.length).fill(0), ...rest];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}
