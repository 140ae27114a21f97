/**
 * PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2): written to a server
 * before any client byte so the server learns the real client address through passthrough, and
 * read from a load balancer in front of a listener (`proxy_protocol.accept_from`), so edgemux
 * learns it too.
 *
 * @module
 */

import { parseIp } from "../../routing/cidr.ts";
import { Deadline, type DeadlineSet } from "../deadlines.ts";
import { closeQuietly, type PeerAddress } from "../net.ts";

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

/*
 * Receiving. A listener with `proxy_protocol` reads one header from each connection before
 * anything else (HAProxy's proxy-protocol.txt, versions 1 and 2):
 *
 *   v1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, or
 *       "PROXY UNKNOWN" [anything but CR LF] CRLF; 107 bytes at most, 15 at least.
 *   v2: the 12-byte signature, ver_cmd (0x20 LOCAL, 0x21 PROXY), family/transport, a 16-bit
 *       length, then the addresses (INET 12 bytes, INET6 36, UNIX 216) and TLVs; 16 at least.
 *
 * Deno cannot peek at a socket, and the bytes after the header belong to the client's own
 * protocol (the sniffer reads them next), so the reader never asks for more than the header
 * can still be: v2 says its length after 16 bytes; v1 is read one byte at a time after its
 * first 15 until its LF (a few dozen small reads, once per connection).
 */

/** Bytes every header has: `PROXY UNKNOWN\r\n` is the shortest v1 header. */
const MIN_HEADER = 15;
/** The longest v1 header, CRLF included (proxy-protocol.txt §2.1). */
const V1_MAX = 107;
/** The v2 header's fixed part: signature, ver_cmd, family, length. */
const V2_FIXED = 16;
/**
 * The longest v2 header accepted: addresses plus TLVs (AWS, Azure and GCP add a few dozen bytes;
 * certificates in PP2_TYPE_SSL subtypes more). A longer one is refused rather than buffered.
 */
export const V2_MAX = 4096;
const V1_PREFIX = "PROXY ";

/** Where a proxied connection really came from. */
export type ProxyOrigin =
  /** The header names the client (`source`) and the address it connected to. */
  | { kind: "proxied"; version: 1 | 2; source: PeerAddress; destination: PeerAddress }
  /**
   * The connection is the proxy's own (v2 LOCAL, as health checks send) or the header carries
   * no usable address (v1 UNKNOWN, v2 UNSPEC or UNIX): the spec says to use the real
   * connection's endpoints then.
   */
  | { kind: "local"; version: 1 | 2; why: string };

/** What {@link decodeProxyHeader} made of the bytes read so far. */
export type ProxyDecode =
  /** At least `bytes` more bytes are needed, and that many cannot reach past the header. */
  | { kind: "need"; bytes: number }
  /** `missing`: the bytes do not start a PROXY header at all (the sender does not send one). */
  | { kind: "malformed"; reason: string; missing: boolean }
  | { kind: "header"; origin: ProxyOrigin; length: number };

/**
 * Decodes the PROXY header at the start of `data`, or says how many more bytes it needs. Pure.
 *
 * @param data the bytes read from the connection so far (never more than asked for)
 */
export function decodeProxyHeader(data: Uint8Array): ProxyDecode {
  const v2 = startsLike(data, V2_SIGNATURE);
  const v1 = !v2 && startsLike(data, V1_PREFIX_BYTES);
  if (!v1 && !v2) {
    return {
      kind: "malformed",
      reason: `no PROXY header: the connection starts with ${describeBytes(data)}`,
      missing: true,
    };
  }
  if (data.length < MIN_HEADER) return { kind: "need", bytes: MIN_HEADER - data.length };
  return v2 ? decodeV2(data) : decodeV1(data);
}

const V1_PREFIX_BYTES = new TextEncoder().encode(V1_PREFIX);

/** True when `data` agrees with `prefix` over the bytes both have. */
function startsLike(data: Uint8Array, prefix: ArrayLike<number>): boolean {
  const n = Math.min(data.length, prefix.length);
  for (let i = 0; i < n; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

/** The first bytes, for a message: as text when printable, else in hex. */
function describeBytes(data: Uint8Array): string {
  const head = data.subarray(0, 16);
  const printable = head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0d || b === 0x0a);
  if (printable) {
    return JSON.stringify(String.fromCharCode(...head)) + (data.length > 16 ? "…" : "");
  }
  return `bytes ${[...head].map((b) => b.toString(16).padStart(2, "0")).join(" ")}` +
    (data.length > 16 ? " …" : "") +
    (data[0] === 0x16 ? " (a TLS handshake)" : "");
}

function decodeV1(data: Uint8Array): ProxyDecode {
  const lf = data.indexOf(0x0a);
  if (lf < 0) {
    if (data.length >= V1_MAX) {
      return bad(`v1 header has no CRLF within ${V1_MAX} bytes`);
    }
    return { kind: "need", bytes: 1 };
  }
  if (data[lf - 1] !== 0x0d) return bad("v1 header ends in LF without CR");
  const line = String.fromCharCode(...data.subarray(0, lf - 1));
  const length = lf + 1;
  if (line === "PROXY UNKNOWN" || line.startsWith("PROXY UNKNOWN ")) {
    return { kind: "header", origin: { kind: "local", version: 1, why: "UNKNOWN" }, length };
  }
  const fields = line.split(" ");
  if (fields.length !== 6) {
    return bad(`v1 header has ${fields.length} fields, not 6: ${JSON.stringify(line)}`);
  }
  const [, proto, src, dst, sport, dport] = fields;
  if (proto !== "TCP4" && proto !== "TCP6") {
    return bad(`v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN`);
  }
  const family = proto === "TCP4" ? 4 : 6;
  const source = textEndpoint(src, sport, family);
  const destination = textEndpoint(dst, dport, family);
  if (typeof source === "string") return bad(source);
  if (typeof destination === "string") return bad(destination);
  return { kind: "header", origin: { kind: "proxied", version: 1, source, destination }, length };
}

/** A v1 address and port, checked against the family, or what is wrong with them. */
function textEndpoint(ip: string, port: string, family: 4 | 6): PeerAddress | string {
  const bytes = parseIp(ip);
  if (bytes === null || bytes.length !== (family === 4 ? 4 : 16)) {
    return `v1 address ${JSON.stringify(ip)} is not an IPv${family} address`;
  }
  if (!/^(0|[1-9][0-9]{0,4})$/.test(port) || Number(port) > 65535) {
    return `v1 port ${JSON.stringify(port)} is not a decimal number from 0 to 65535`;
  }
  return endpoint(bytes, Number(port));
}

function decodeV2(data: Uint8Array): ProxyDecode {
  if (data.length < V2_FIXED) return { kind: "need", bytes: V2_FIXED - data.length };
  const length = V2_FIXED + ((data[14] << 8) | data[15]);
  if (length > V2_MAX) {
    return bad(`v2 header of ${length} bytes is longer than the ${V2_MAX} accepted`);
  }
  const version = data[12] >> 4;
  const command = data[12] & 0x0f;
  if (version !== 2) return bad(`v2 header has version ${version}, not 2`);
  if (command > 1) return bad(`v2 command ${command} is neither LOCAL (0) nor PROXY (1)`);
  const family = data[13] >> 4;
  const transport = data[13] & 0x0f;
  if (family > 3 || transport > 2) {
    return bad(`v2 address family byte 0x${data[13].toString(16).padStart(2, "0")} is unknown`);
  }
  if (data.length < length) return { kind: "need", bytes: length - data.length };
  // LOCAL: the proxy speaks for itself (a health check); the block is ignored, as the spec says.
  if (command === 0) {
    return { kind: "header", origin: { kind: "local", version: 2, why: "LOCAL" }, length };
  }
  if (family === 0 || family === 3) {
    const why = family === 0 ? "UNSPEC" : "UNIX";
    return { kind: "header", origin: { kind: "local", version: 2, why }, length };
  }
  if (transport !== 1) {
    return bad(
      `v2 header carries a ${transport === 2 ? "UDP" : "UNSPEC"} address on a TCP connection`,
    );
  }
  const size = family === 1 ? 4 : 16;
  if (length - V2_FIXED < 2 * size + 4) {
    return bad(
      `v2 length ${length - V2_FIXED} is too short for its IPv${family === 1 ? 4 : 6} addresses`,
    );
  }
  const a = V2_FIXED;
  const ports = a + 2 * size;
  const source = endpoint(data.subarray(a, a + size), (data[ports] << 8) | data[ports + 1]);
  const destination = endpoint(
    data.subarray(a + size, a + 2 * size),
    (data[ports + 2] << 8) | data[ports + 3],
  );
  // TLVs (the rest, up to `length`) are skipped: nothing here uses them.
  return { kind: "header", origin: { kind: "proxied", version: 2, source, destination }, length };
}

function bad(reason: string): ProxyDecode {
  return { kind: "malformed", reason, missing: false };
}

/**
 * An address as the rest of edgemux sees clients (net.ts `peerAddress`): IPv4-mapped IPv6
 * unmapped, IPv6 in its canonical RFC 5952 text (the URL parser writes exactly that form).
 */
function endpoint(bytes: Uint8Array, port: number): PeerAddress {
  if (bytes.length === 4) return { ip: bytes.join("."), port, family: 4 };
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { ip: bytes.subarray(12).join("."), port, family: 4 };
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  const ip = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
  return { ip, port, family: 6 };
}

/** How reading a PROXY header ended. */
export type ProxyReadResult =
  | { kind: "header"; origin: ProxyOrigin; bytes: number }
  | {
    kind: "refused";
    /** The access log's `end`. */
    end:
      | "proxy-header-missing"
      | "proxy-header-malformed"
      | "proxy-header-timeout"
      | "client-closed"
      | "client-closed-early";
    detail: string | null;
    bytes: number;
  };

/**
 * Reads the PROXY header of a connection, and not one byte more, within `timeout` ms. Never
 * throws; on a timeout the connection has been closed (a read can only be ended by closing).
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  timeout: number,
  deadlines: DeadlineSet,
): Promise<ProxyReadResult> {
  const buf = new Uint8Array(V2_MAX);
  let length = 0;
  const deadline = new Deadline(() => closeQuietly(conn));
  deadlines.arm(deadline, timeout);
  const timedOut = (): ProxyReadResult => ({
    kind: "refused",
    end: "proxy-header-timeout",
    detail: `${length} bytes in ${timeout} ms, not a whole PROXY header`,
    bytes: length,
  });
  try {
    for (;;) {
      const got = decodeProxyHeader(buf.subarray(0, length));
      if (got.kind === "header") return { kind: "header", origin: got.origin, bytes: length };
      if (got.kind === "malformed") {
        return {
          kind: "refused",
          end: got.missing ? "proxy-header-missing" : "proxy-header-malformed",
          detail: got.reason,
          bytes: length,
        };
      }
      const n = await conn.read(buf.subarray(length, length + got.bytes));
      if (n === null) {
        if (deadline.expired) return timedOut();
        return {
          kind: "refused",
          end: length === 0 ? "client-closed" : "client-closed-early",
          detail: length === 0 ? null : `closed after ${length} bytes of a PROXY header`,
          bytes: length,
        };
      }
      length += n;
    }
  } catch {
    if (deadline.expired) return timedOut();
    return {
      kind: "refused",
      end: length === 0 ? "client-closed" : "client-closed-early",
      detail: null,
      bytes: length,
    };
  } finally {
    deadlines.disarm(deadline);
  }
}
