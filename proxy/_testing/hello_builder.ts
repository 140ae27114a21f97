/**
 * Builds TLS ClientHello bytes for tests: well-formed ones by default, odd ones through the
 * options, and re-fragmented ones through {@linkcode splitRecords}.
 *
 * The output is deterministic (fixed random, session id and extension order) so test failures
 * reproduce byte for byte.
 *
 * @module
 */

/** Options for {@linkcode buildClientHello}. */
export interface HelloOptions {
  /** Host name for server_name; `null` leaves the extension out. Default "a.example.test". */
  sni?: string | null;
  /** ALPN protocols; omitted or empty leaves the extension out. */
  alpn?: string[];
  /**
   * Add a padding extension (type 21) so the handshake message, its 4-byte header included,
   * is at least this long (exactly, unless the gap is 1 to 3 bytes: padding needs 4).
   */
  padTo?: number;
  /** Extensions appended after the standard ones, before padding, as given (even duplicates). */
  extraExtensions?: { type: number; data: Uint8Array }[];
  /** Size of the single x25519 key_share entry. Default 32. */
  keyShareBytes?: number;
  /** legacy_record_version of the record header. Default 0x0301, as real clients send. */
  recordVersion?: number;
}

/** Concatenate byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function u8(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff);
}

function u16(v: number): Uint8Array {
  return Uint8Array.of((v >> 8) & 0xff, v & 0xff);
}

function u24(v: number): Uint8Array {
  return Uint8Array.of((v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** One extension: type(2) | length(2) | data. */
export function extension(type: number, data: Uint8Array): Uint8Array {
  return concat(u16(type), u16(data.length), data);
}

/** server_name extension data holding the given host_name entries (name_type 0). */
export function serverNameData(...names: string[]): Uint8Array {
  const entries = concat(...names.map((n) => concat(u8(0), u16(n.length), ascii(n))));
  return concat(u16(entries.length), entries);
}

/** ALPN extension data for the given protocol names. */
export function alpnData(protocols: string[]): Uint8Array {
  const list = concat(...protocols.map((p) => concat(u8(p.length), ascii(p))));
  return concat(u16(list.length), list);
}

function filled(len: number, start: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (start + i) & 0xff;
  return out;
}

/** Wrap a handshake message in TLS records of the given fragment sizes (see splitRecords). */
function recordsOf(
  message: Uint8Array,
  sizes: number[],
  recordVersion: number,
  restSize = 0xffff,
): Uint8Array {
  const parts: Uint8Array[] = [];
  const push = (frag: Uint8Array) => {
    parts.push(u8(22), u16(recordVersion), u16(frag.length), frag);
  };
  let off = 0;
  for (const size of sizes) {
    if (off >= message.length) break;
    const frag = message.subarray(off, Math.min(message.length, off + size));
    push(frag);
    off += frag.length;
  }
  while (off < message.length) {
    const frag = message.subarray(off, Math.min(message.length, off + restSize));
    push(frag);
    off += frag.length;
  }
  return concat(...parts);
}

/**
 * Build a ClientHello in one TLS record, even when it is longer than the 16384 bytes a record
 * may carry (that is how tests build oversized records). Only a message too long for a
 * record's 16-bit length field (over 65535 bytes) is cut into 16384-byte records. It offers
 * TLS 1.3 and 1.2.
 */
export function buildClientHello(opts: HelloOptions = {}): Uint8Array {
  const sni = opts.sni === undefined ? "a.example.test" : opts.sni;
  const exts: Uint8Array[] = [];
  if (sni !== null) exts.push(extension(0, serverNameData(sni)));
  exts.push(extension(10, concat(u16(4), u16(0x001d), u16(0x0017)))); // supported_groups
  exts.push(extension(13, concat(u16(4), u16(0x0403), u16(0x0804)))); // signature_algorithms
  if (opts.alpn && opts.alpn.length > 0) exts.push(extension(16, alpnData(opts.alpn)));
  exts.push(extension(43, concat(u8(4), u16(0x0304), u16(0x0303)))); // supported_versions
  const share = filled(opts.keyShareBytes ?? 32, 0x40);
  const entry = concat(u16(0x001d), u16(share.length), share);
  exts.push(extension(51, concat(u16(entry.length), entry))); // key_share
  for (const e of opts.extraExtensions ?? []) exts.push(extension(e.type, e.data));

  const fixed = concat(
    u16(0x0303),
    filled(32, 1), // random
    u8(32),
    filled(32, 0xa0), // legacy_session_id
    concat(u16(6), u16(0x1301), u16(0x1302), u16(0xc02b)), // cipher_suites
    concat(u8(1), u8(0)), // legacy_compression_methods: null only
  );
  let extBlock = concat(...exts);
  if (opts.padTo !== undefined) {
    const have = 4 + fixed.length + 2 + extBlock.length;
    if (have < opts.padTo) {
      const gap = Math.max(4, opts.padTo - have);
      extBlock = concat(extBlock, extension(21, new Uint8Array(gap - 4)));
    }
  }
  const body = concat(fixed, u16(extBlock.length), extBlock);
  const message = concat(u8(1), u24(body.length), body);
  const recordVersion = opts.recordVersion ?? 0x0301;
  // A record's length field is 16 bits; past that, use full-size records so huge hellos can
  // still be written down at all.
  if (message.length > 0xffff) return recordsOf(message, [], recordVersion, 16384);
  return concat(u8(22), u16(recordVersion), u16(message.length), message);
}

/**
 * The handshake bytes carried by consecutive handshake records at the start of `records`.
 * Stops at the first record of another type or a record cut short.
 */
export function handshakeBytes(records: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let off = 0;
  while (off + 5 <= records.length && records[off] === 22) {
    const len = (records[off + 3] << 8) | records[off + 4];
    if (off + 5 + len > records.length) break;
    parts.push(records.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return concat(...parts);
}

/**
 * Re-fragment the handshake bytes of `hello` (one or more handshake records) into records of
 * the given fragment sizes, in order. The last record is cut short when the message ends
 * first (remaining sizes are ignored); whatever is left after the sizes run out goes into one
 * final record (several if it is over 65535 bytes). A size of 0 writes an empty record. The
 * record version of the first record is kept.
 */
export function splitRecords(hello: Uint8Array, sizes: number[]): Uint8Array {
  const version = (hello[1] << 8) | hello[2];
  return recordsOf(handshakeBytes(hello), sizes, version);
}

/**
 * Re-encode a hello built by {@linkcode buildClientHello} (one or more records) with the
 * extension of the given type replaced by `data` in place, appended if absent, or removed when
 * `data` is null. The result is one record (or several when over 65535 bytes).
 */
export function replaceExtension(
  hello: Uint8Array,
  type: number,
  data: Uint8Array | null,
): Uint8Array {
  const msg = handshakeBytes(hello);
  let p = 4 + 2 + 32;
  p += 1 + msg[p];
  p += 2 + ((msg[p] << 8) | msg[p + 1]);
  p += 1 + msg[p];
  const head = msg.subarray(4, p);
  const exts: Uint8Array[] = [];
  let found = false;
  for (let q = p + 2; q + 4 <= msg.length;) {
    const t = (msg[q] << 8) | msg[q + 1];
    const len = (msg[q + 2] << 8) | msg[q + 3];
    if (t === type) {
      found = true;
      if (data !== null) exts.push(extension(type, data));
    } else {
      exts.push(msg.subarray(q, q + 4 + len));
    }
    q += 4 + len;
  }
  if (!found && data !== null) exts.push(extension(type, data));
  const block = concat(...exts);
  const body = concat(head, u16(block.length), block);
  const message = concat(u8(1), u24(body.length), body);
  const version = (hello[1] << 8) | hello[2];
  return recordsOf(message, message.length > 0xffff ? [] : [0xffff], version, 16384);
}
