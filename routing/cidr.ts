/**
 * Sets of IP networks (CIDR blocks), for lists such as the proxies whose `X-Forwarded-For` is
 * trusted. Pure: addresses are text in, booleans out.
 *
 * Entries are parsed once, into 32-bit words (one for IPv4, four for IPv6) with their masks;
 * `contains` parses the address into a scratch buffer and compares word by word, so a lookup
 * allocates nothing. The scan is linear: these lists are short.
 *
 * IPv4 clients on a dual-stack (`[::]`) socket show up as IPv4-mapped IPv6 addresses
 * (`::ffff:192.0.2.7`, RFC 4291 §2.5.5.2). Such an address is an IPv4 client, so it is matched
 * against the IPv4 entries; an entry written in mapped form with a prefix of /96 or more
 * (`::ffff:10.0.0.0/104`) is an IPv4 entry (`10.0.0.0/8`). Other IPv6 entries, even `::/0`,
 * never match IPv4 clients: write `0.0.0.0/0` as well to take every address.
 *
 * @module
 */

/** The family of an address parsed into the scratch words, or 0 when it is not an address. */
type Family = 0 | 4 | 6;

/** Per-call scratch space; JavaScript runs one call at a time, and none of these re-enter. */
const scratch = new Int32Array(4);
const groups = new Uint16Array(8);

/**
 * Parses an IPv4 address (`192.0.2.7`, four decimal octets without leading zeros) or an IPv6
 * address (RFC 4291 §2.2 text: hex groups, one `::`, an optional dotted IPv4 tail).
 *
 * @param text the address, without brackets, prefix or zone
 * @returns its 4 or 16 bytes in network order, or null when it is not an address
 */
export function parseIp(text: string): Uint8Array | null {
  const family = parseInto(text, scratch);
  if (family === 0) return null;
  const bytes = new Uint8Array(family === 4 ? 4 : 16);
  const view = new DataView(bytes.buffer);
  for (let w = 0; w < bytes.length / 4; w++) view.setInt32(w * 4, scratch[w]);
  return bytes;
}

/** A set of IPv4 and IPv6 networks. Immutable once built. */
export class CidrSet {
  /** IPv4 entries as pairs: network, mask. */
  readonly #v4: Int32Array;
  /** IPv6 entries as runs of eight: four network words, four mask words. */
  readonly #v6: Int32Array;

  /**
   * @param entries networks such as `10.0.0.0/8`, `fd00::/8` or `::ffff:10.0.0.0/104`, and
   *   single addresses such as `192.168.1.7` (a /32) or `::1` (a /128)
   * @throws {RangeError} naming the first bad entry and how to write it
   */
  constructor(entries: readonly string[]) {
    const v4: number[] = [];
    const v6: number[] = [];
    for (const entry of entries) {
      const parsed = parseEntry(entry);
      if (parsed.family === 4) v4.push(parsed.words[0], parsed.masks[0]);
      else v6.push(...parsed.words, ...parsed.masks);
    }
    this.#v4 = Int32Array.from(v4);
    this.#v6 = Int32Array.from(v6);
  }

  /**
   * Whether an address lies in one of the networks.
   *
   * @param ip an IPv4 or IPv6 address, as `Deno.NetAddr.hostname` gives it; an IPv6 zone
   *   (`fe80::1%eth0`) is ignored
   * @returns false for text that is not an address
   */
  contains(ip: string): boolean {
    const zone = ip.indexOf("%");
    let family = zone < 0 ? parseInto(ip, scratch) : parseV6Zoned(ip, zone);
    if (family === 6 && isMapped(scratch)) {
      scratch[0] = scratch[3];
      family = 4;
    }
    if (family === 4) {
      const a = scratch[0];
      const v4 = this.#v4;
      for (let i = 0; i < v4.length; i += 2) if ((a & v4[i + 1]) === v4[i]) return true;
      return false;
    }
    if (family === 6) {
      const [a0, a1, a2, a3] = scratch;
      const v6 = this.#v6;
      for (let i = 0; i < v6.length; i += 8) {
        if (
          (a0 & v6[i + 4]) === v6[i] && (a1 & v6[i + 5]) === v6[i + 1] &&
          (a2 & v6[i + 6]) === v6[i + 2] && (a3 & v6[i + 7]) === v6[i + 3]
        ) return true;
      }
    }
    return false;
  }
}

interface ParsedEntry {
  family: 4 | 6;
  words: number[];
  masks: number[];
}

function parseEntry(entry: string): ParsedEntry {
  const fail = (problem: string, fix: string): never => {
    throw new RangeError(`Cannot parse CIDR entry "${entry}": ${problem}; ${fix}`);
  };
  const text = entry.trim();
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  let family = parseInto(address, scratch);
  if (family === 0) {
    fail(
      `"${address}" is not an IPv4 or IPv6 address`,
      'write an address such as "192.0.2.7" or "2001:db8::1", optionally followed by a /prefix',
    );
  }
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    prefix = /^[0-9]{1,3}$/.test(digits) ? Number(digits) : NaN;
    if (!(prefix <= bits)) {
      fail(
        `"/${digits}" is not a prefix length for ${family === 4 ? "IPv4" : "IPv6"}`,
        `write a whole number of bits from 0 to ${bits}, as in "${address}/${bits}"`,
      );
    }
  }
  let words = Array.from(scratch.subarray(0, family === 4 ? 1 : 4));
  // A mapped network of /96 or more is an IPv4 network (see the module comment).
  const mapped = family === 6 && isMapped(scratch) && prefix >= 96;
  if (mapped) {
    family = 4;
    words = [scratch[3]];
    prefix -= 96;
  }
  const masks = words.map((_, w) => maskWord(prefix - 32 * w));
  const network = words.map((word, w) => word & masks[w]);
  if (network.some((word, w) => word !== words[w])) {
    // Only possible with a /prefix shorter than the address: a typo for the network, or a
    // single address written with the wrong length.
    const show = (ws: number[]) => mapped ? `::ffff:${formatV4(ws[0])}` : format(ws);
    const single = mapped ? 128 : bits;
    fail(
      `the address has host bits set beyond its ${text.slice(slash)} prefix`,
      `write "${show(network)}${text.slice(slash)}" for the network, or "${address}/${single}" ` +
        `for the one address`,
    );
  }
  return { family: family as 4 | 6, words: network, masks };
}

/** The mask for one 32-bit word when `bits` of it (clamped to 0..32) belong to the network. */
function maskWord(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return ~(-1 >>> bits); // the top `bits` bits set, as a signed 32-bit number
}

function isMapped(words: Int32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** An IPv6 address followed by `%zone` (RFC 4007 §11), parsed into the scratch words. */
function parseV6Zoned(ip: string, zone: number): Family {
  return zone + 1 < ip.length && parseV6(ip.slice(0, zone), scratch) ? 6 : 0;
}

/** Parses `text` into `out` (one word for IPv4, four for IPv6); returns the family. */
function parseInto(text: string, out: Int32Array): Family {
  if (text.includes(":")) return parseV6(text, out) ? 6 : 0;
  const v4 = parseV4(text, 0, text.length);
  if (Number.isNaN(v4)) return 0;
  out[0] = v4;
  return 4;
}

/** Dotted-quad IPv4 in `text[from, to)`, as a signed 32-bit number, or NaN when it is not one. */
function parseV4(text: string, from: number, to: number): number {
  let value = 0;
  let octets = 0;
  let i = from;
  while (true) {
    const start = i;
    let octet = 0;
    while (i < to) {
      const c = text.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      octet = octet * 10 + (c - 0x30);
      i++;
    }
    const length = i - start;
    // Leading zeros are refused: some parsers read "010" as octal 8.
    if (length === 0 || length > 3 || octet > 255 || (length > 1 && text[start] === "0")) {
      return NaN;
    }
    value = (value << 8) | octet;
    octets++;
    if (i === to) break;
    if (octets === 4 || text.charCodeAt(i) !== 0x2e /* . */) return NaN;
    i++;
  }
  return octets === 4 ? value : NaN;
}

function parseV6(text: string, out: Int32Array): boolean {
  const len = text.length;
  let n = 0; // groups written
  let gap = -1; // where "::" stands, as a group index
  let i = 0;
  if (text.startsWith("::")) {
    gap = 0;
    i = 2;
  } else if (text.charCodeAt(0) === 0x3a /* : */) {
    return false;
  }
  while (i < len) {
    if (n === 8) return false;
    const start = i;
    let group = 0;
    while (i < len) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      if (i - start === 4) return false;
      group = group * 16 + h;
      i++;
    }
    if (i < len && text.charCodeAt(i) === 0x2e /* . */) {
      // A dotted IPv4 tail (RFC 4291 §2.2, form 3) fills the last two groups.
      if (n > 6) return false;
      const v4 = parseV4(text, start, len);
      if (Number.isNaN(v4)) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      break;
    }
    if (i === start) return false;
    groups[n++] = group;
    if (i === len) break;
    if (text.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (i === len) return false; // a single trailing ":"
    if (text.charCodeAt(i) === 0x3a) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  if (gap >= 0) {
    // Move the groups after "::" to the end and fill the gap with zeros.
    const after = n - gap;
    for (let k = 1; k <= after; k++) groups[8 - k] = groups[n - k];
    groups.fill(0, gap, 8 - after);
  }
  for (let w = 0; w < 4; w++) out[w] = (groups[2 * w] << 16) | groups[2 * w + 1];
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function formatV4(word: number): string {
  return [word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255].join(".");
}

/** Formats words the way RFC 5952 recommends: lowercase, the longest zero run as "::". */
function format(words: number[]): string {
  if (words.length === 1) return formatV4(words[0]);
  const g = words.flatMap((w) => [w >>> 16, w & 0xffff]);
  let best = -1;
  let bestLength = 1; // a lone zero group is not compressed
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (part: number[]) => part.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLength))}`;
}
