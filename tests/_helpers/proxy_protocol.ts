/**
 * A small, strict reader of PROXY protocol headers (versions 1 and 2), used by the test backend
 * that checks what edgemux sends upstream. It is written from HAProxy's proxy-protocol.txt and
 * kept independent of edgemux's own encoder on purpose: a test oracle must not share code with
 * the thing it checks.
 *
 * Version 1 (text, at most 107 bytes including CRLF):
 *
 *     "PROXY" SP ("TCP4" | "TCP6") SP src-addr SP dst-addr SP src-port SP dst-port CRLF
 *     "PROXY" SP "UNKNOWN" *(any byte but CR) CRLF
 *
 * Version 2 (binary):
 *
 *     signature  12 bytes  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A  ("\r\n\r\n\0\r\nQUIT\n")
 *     ver_cmd     1 byte   high nibble version (2), low nibble command (0 LOCAL, 1 PROXY)
 *     fam         1 byte   high nibble family (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX),
 *                          low nibble transport (0 UNSPEC, 1 STREAM, 2 DGRAM)
 *     len         2 bytes  big-endian length of everything that follows
 *     addresses   INET: src(4) dst(4) sport(2) dport(2); INET6: src(16) dst(16) sport(2)
 *                 dport(2); UNIX: src(108) dst(108); UNSPEC: none
 *     TLVs        type(1) length(2, big-endian) value, until len is used up
 *
 * @module
 */

/** One endpoint carried by a header. IPv6 addresses are in RFC 5952 form, without brackets. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

/** A decoded PROXY protocol header. */
export interface ProxyHeader {
  version: 1 | 2;
  /** `local` (v2 LOCAL, e.g. health checks) means: use the real connection's endpoints. */
  command: "proxy" | "local";
  /**
   * v1: `TCP4`, `TCP6` or `UNKNOWN`. v2: the family and transport, e.g. `TCP4`, `TCP6`, `UDP4`,
   * `UNIX_STREAM`, or `UNSPEC` when the family is unspecified.
   */
  protocol: string;
  /** The original client; null for UNKNOWN, UNSPEC and UNIX headers. */
  source: ProxyEndpoint | null;
  /** The address the client connected to; null when `source` is. */
  destination: ProxyEndpoint | null;
  /** v2 type-length-value extensions in wire order (empty for v1). */
  tlvs: { type: number; value: Uint8Array }[];
  /** Bytes the header occupies; application data starts right after. */
  length: number;
}

/** Result of {@linkcode parseProxyHeader}. */
export type ProxyParseResult =
  | { kind: "incomplete" }
  | { kind: "none" }
  | { kind: "malformed"; reason: string }
  | { kind: "header"; header: ProxyHeader };

const V1_PREFIX = new TextEncoder().encode("PROXY ");
const V1_MAX_LENGTH = 107;
/** The twelve bytes every PROXY protocol v2 header starts with. */
export const V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const V2_FIXED_LENGTH = 16;

/** True when `data` and `prefix` agree on their common length. */
function agreesWith(data: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(data.length, prefix.length);
  for (let i = 0; i < n; i++) {
    if (data[i] !== prefix[i]) return false;
  }
  return true;
}

/**
 * Decodes the PROXY protocol header at the start of `data`.
 *
 * @param data the first bytes received on a connection (more may follow)
 * @returns `incomplete` when more bytes are needed to decide, `none` when the data does not
 * start with a header, `malformed` with a reason, or the decoded `header`
 */
export function parseProxyHeader(data: Uint8Array): ProxyParseResult {
  if (data.length === 0) return { kind: "incomplete" };
  if (agreesWith(data, V2_SIGNATURE)) {
    return data.length < V2_SIGNATURE.length ? { kind: "incomplete" } : parseV2(data);
  }
  if (agreesWith(data, V1_PREFIX)) {
    return data.length < V1_PREFIX.length ? { kind: "incomplete" } : parseV1(data);
  }
  return { kind: "none" };
}

function parseV1(data: Uint8Array): ProxyParseResult {
  const limit = Math.min(data.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    if (data[i] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end === -1) {
    return data.length >= V1_MAX_LENGTH
      ? { kind: "malformed", reason: `v1 header has no CRLF within ${V1_MAX_LENGTH} bytes` }
      : { kind: "incomplete" };
  }
  if (end === 0 || data[end - 1] !== 0x0d) {
    return { kind: "malformed", reason: "v1 header line ends in LF without CR" };
  }
  const line = new TextDecoder().decode(data.subarray(0, end - 1));
  const length = end + 1;
  const fields = line.split(" ");
  if (fields[1] === "UNKNOWN") {
    return {
      kind: "header",
      header: {
        version: 1,
        command: "proxy",
        protocol: "UNKNOWN",
        source: null,
        destination: null,
        tlvs: [],
        length,
      },
    };
  }
  if (fields.length !== 6) {
    return { kind: "malformed", reason: `v1 header has ${fields.length} fields, not 6: "${line}"` };
  }
  const [, protocol, srcAddress, dstAddress, srcPort, dstPort] = fields;
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    return { kind: "malformed", reason: `v1 protocol "${protocol}" is not TCP4, TCP6 or UNKNOWN` };
  }
  const isAddress = protocol === "TCP4" ? isIpv4Text : isIpv6Text;
  for (const address of [srcAddress, dstAddress]) {
    if (!isAddress(address)) {
      return { kind: "malformed", reason: `v1 address "${address}" is not a valid ${protocol}` };
    }
  }
  const ports: number[] = [];
  for (const port of [srcPort, dstPort]) {
    if (!/^(0|[1-9][0-9]{0,4})$/.test(port) || Number(port) > 65535) {
      return { kind: "malformed", reason: `v1 port "${port}" is not a decimal 0..65535` };
    }
    ports.push(Number(port));
  }
  return {
    kind: "header",
    header: {
      version: 1,
      command: "proxy",
      protocol,
      source: { address: srcAddress, port: ports[0] },
      destination: { address: dstAddress, port: ports[1] },
      tlvs: [],
      length,
    },
  };
}

function isIpv4Text(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((part) => /^(0|[1-9][0-9]{0,2})$/.test(part) && Number(part) <= 255);
}

function isIpv6Text(text: string): boolean {
  // Delegating to the URL parser accepts exactly the RFC 4291 text forms (including "::" and
  // an embedded IPv4 tail) without a hand-written grammar.
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

const V2_COMMANDS: Record<number, ProxyHeader["command"]> = { 0x0: "local", 0x1: "proxy" };
const V2_FAMILIES: Record<number, string> = { 0x0: "UNSPEC", 0x1: "4", 0x2: "6", 0x3: "UNIX" };
const V2_TRANSPORTS: Record<number, string> = { 0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM" };

function parseV2(data: Uint8Array): ProxyParseResult {
  if (data.length < V2_FIXED_LENGTH) return { kind: "incomplete" };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const verCmd = data[12];
  if (verCmd >> 4 !== 0x2) {
    return { kind: "malformed", reason: `v2 version nibble is ${verCmd >> 4}, not 2` };
  }
  const command = V2_COMMANDS[verCmd & 0x0f];
  if (command === undefined) {
    return { kind: "malformed", reason: `v2 command nibble ${verCmd & 0x0f} is not LOCAL/PROXY` };
  }
  const family = V2_FAMILIES[data[13] >> 4];
  const transport = V2_TRANSPORTS[data[13] & 0x0f];
  if (family === undefined || transport === undefined) {
    return { kind: "malformed", reason: `v2 family byte 0x${data[13].toString(16)} is unknown` };
  }
  const bodyLength = view.getUint16(14);
  const length = V2_FIXED_LENGTH + bodyLength;
  if (data.length < length) return { kind: "incomplete" };

  let protocol: string;
  if (family === "UNSPEC") protocol = "UNSPEC";
  else if (family === "UNIX") protocol = `UNIX_${transport}`;
  else if (transport === "STREAM") protocol = `TCP${family}`;
  else if (transport === "DGRAM") protocol = `UDP${family}`;
  else protocol = `UNSPEC${family}`;

  const addressLength = family === "4" ? 12 : family === "6" ? 36 : family === "UNIX" ? 216 : 0;
  if (bodyLength < addressLength) {
    return {
      kind: "malformed",
      reason: `v2 length ${bodyLength} is too short for a ${protocol} address block`,
    };
  }
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  const a = V2_FIXED_LENGTH;
  if (family === "4") {
    source = { address: formatIpv4(data.subarray(a, a + 4)), port: view.getUint16(a + 8) };
    destination = {
      address: formatIpv4(data.subarray(a + 4, a + 8)),
      port: view.getUint16(a + 10),
    };
  } else if (family === "6") {
    source = { address: formatIpv6(data.subarray(a, a + 16)), port: view.getUint16(a + 32) };
    destination = {
      address: formatIpv6(data.subarray(a + 16, a + 32)),
      port: view.getUint16(a + 34),
    };
  }

  const tlvs: ProxyHeader["tlvs"] = [];
  for (let offset = a + addressLength; offset < length;) {
    if (offset + 3 > length) {
      return { kind: "malformed", reason: `v2 TLV header at byte ${offset} is truncated` };
    }
    const type = data[offset];
    const tlvLength = view.getUint16(offset + 1);
    const valueStart = offset + 3;
    if (valueStart + tlvLength > length) {
      return {
        kind: "malformed",
        reason: `v2 TLV 0x${type.toString(16)} at byte ${offset} overruns the header`,
      };
    }
    tlvs.push({ type, value: data.slice(valueStart, valueStart + tlvLength) });
    offset = valueStart + tlvLength;
  }

  return {
    kind: "header",
    header: { version: 2, command, protocol, source, destination, tlvs, length },
  };
}

function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes).join(".");
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups as
 * "::" (the first on a tie), and IPv4-mapped addresses with a dotted tail. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes.subarray(12, 16))}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}
