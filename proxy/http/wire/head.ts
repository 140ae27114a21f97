/**
 * Strict, pure parsers for HTTP/1.1 request and response heads (RFC 9112, RFC 9110).
 *
 * This is the security boundary of the HTTP proxy: whatever these parsers accept is forwarded
 * to backends whose own parsers may read it differently. So anything that two honest parsers
 * could frame differently (request smuggling) is refused, not repaired: CRLF only, no obs-fold,
 * no whitespace before a colon, one Host, Transfer-Encoding exactly `chunked`, never together
 * with Content-Length, Content-Length digits only.
 *
 * Both parsers take the bytes from the start of the message and may be called again after each
 * read. Until the blank line that ends the head has arrived they only look for it (with the
 * native `indexOf`) and answer `incomplete`; after that they make one pass over the head.
 *
 * @module
 */

import { decodeLatin1 } from "./latin1.ts";

/** Caps on a head; both count from the first byte of `buf`. */
export interface HeadLimits {
  /** The head, including the final CRLFCRLF (and any empty lines before a request line). */
  maxHeadBytes: number;
  /** Header field lines. */
  maxHeaders: number;
}

/** 32 KiB and 100 fields: above any browser or curl head, and what nginx-like proxies allow. */
export const DEFAULT_HEAD_LIMITS: Readonly<HeadLimits> = Object.freeze({
  maxHeadBytes: 32768,
  maxHeaders: 100,
});

/** How the message body is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  /** No body follows the head. */
  | { kind: "none" }
  /** Exactly `length` bytes follow (Content-Length; a safe integer, possibly 0). */
  | { kind: "length"; length: number }
  /** A chunked body follows; scan it with `ChunkedScanner`. */
  | { kind: "chunked" }
  /** Responses only: the body runs until the server closes the connection. */
  | { kind: "close" };

/** A request head that passed every check. */
export interface RequestHead {
  /** The method token, case kept (methods are case-sensitive). */
  method: string;
  /** The request-target exactly as sent. */
  target: string;
  /** RFC 9112 §3.2: origin (`/p?q`), absolute (`http://a/p`), authority (CONNECT), asterisk. */
  form: "origin" | "absolute" | "authority" | "asterisk";
  /**
   * Path and query to send upstream in origin-form: the target for origin-form, the part after
   * the authority for absolute-form ("/" when empty; "/?q" when only a query), "" otherwise.
   */
  path: string;
  /**
   * Lowercased `host[:port]`. The target's authority for absolute- and authority-form (it wins
   * over Host, RFC 9112 §3.2.2), else the Host value; null only for HTTP/1.0 without a Host or
   * with an empty one. When forwarding, regenerate Host from this rather than copying the
   * client's Host field, which may disagree.
   */
  authority: string | null;
  /** HTTP/1.0 or HTTP/1.1. */
  version: 10 | 11;
  /** Field lines in order: names lowercased, values without surrounding OWS, latin1. */
  headers: [name: string, value: string][];
  /** Never `close` for a request. */
  body: BodyFraming;
  /** Whether the client expects the connection to stay open after this exchange. */
  keepAlive: boolean;
  /** Lowercased tokens of every Connection field, in order (RFC 9110 §7.6.1). */
  connection: string[];
  /**
   * The Upgrade value (several fields joined by ", ") when Connection lists "upgrade" in an
   * HTTP/1.1 request, else null (RFC 9110 §7.8: ignored in HTTP/1.0).
   */
  upgrade: string | null;
  /** An HTTP/1.1 request with `Expect: 100-continue` (RFC 9110 §10.1.1). */
  expectContinue: boolean;
  /** Offset just past the CRLFCRLF; the body (if any) starts here. */
  end: number;
}

/** What {@linkcode parseRequestHead} made of the bytes. */
export type RequestHeadResult =
  /** The head has not fully arrived yet; call again with more bytes. */
  | { kind: "incomplete" }
  /**
   * Refuse the request with `status` and close. `reason` is a short lowercase phrase for logs,
   * never for the client.
   */
  | { kind: "error"; status: 400 | 414 | 431 | 501 | 505; reason: string }
  | { kind: "head"; head: RequestHead };

/** A response head that passed every check. */
export interface ResponseHead {
  version: 10 | 11;
  /** 100–599. */
  status: number;
  /** The reason phrase, possibly empty (latin1). */
  reason: string;
  /** As in {@linkcode RequestHead.headers}. */
  headers: [name: string, value: string][];
  body: BodyFraming;
  /** Whether the connection may be reused after the body; false for `close` framing. */
  keepAlive: boolean;
  /** Lowercased tokens of every Connection field, in order. */
  connection: string[];
  end: number;
}

/** What {@linkcode parseResponseHead} made of the bytes. */
export type ResponseHeadResult =
  | { kind: "incomplete" }
  /** The backend sent something unsafe to forward; `reason` is a short lowercase phrase. */
  | { kind: "error"; reason: string }
  | { kind: "head"; head: ResponseHead };

/*
 * Wire grammar (RFC 9112 §2.1, §3, §4, §5; RFC 9110 §5.1, §5.5, §5.6), with what we accept:
 *
 *   HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
 *   request-line   = method SP request-target SP HTTP-version      (exactly one SP each)
 *   status-line    = HTTP-version SP status-code SP [ reason-phrase ]
 *   HTTP-version   = "HTTP/" DIGIT "." DIGIT                       (1.0 and 1.1 only)
 *   method         = token                 token = 1*tchar
 *   tchar          = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
 *                    / "`" / "|" / "~" / DIGIT / ALPHA
 *   field-line     = field-name ":" OWS field-value OWS            (no space before ":")
 *   field-value    = *( HTAB / SP / VCHAR / obs-text )             obs-text = %x80-FF
 *   reason-phrase  = 1*( HTAB / SP / VCHAR / obs-text )
 *
 * Deliberate choices, each stricter than a lenient recipient may be unless noted:
 * - Up to MAX_LEADING_EMPTY_LINES CRLFs before a request line are skipped (§2.2 asks for at
 *   least one); none before a status line, where one would mean the backend mis-framed the
 *   previous body.
 * - A request-target is VCHARs except "#" (a fragment is never sent, §3.2).
 * - Userinfo in an absolute-form target is refused (RFC 9110 §4.2.4).
 * - A host is a dotted name of letters, digits, "-" and "_" (one trailing dot allowed), a
 *   strict dotted-quad IPv4, or a bracketed IPv6 literal without zone; a name whose last label
 *   looks numeric must be a dotted quad, because URL parsers read "127.1" or "0x7f.1" as
 *   addresses. A port is 1–65535 without leading zeros; an empty port is refused.
 * - Content-Length is DIGITs (leading zeros allowed) up to Number.MAX_SAFE_INTEGER; a list or
 *   repeated fields are accepted only when every value is the same (RFC 9110 §8.6).
 * - Empty list elements are refused in Content-Length and Transfer-Encoding (framing must be
 *   unambiguous) and ignored in Connection (where RFC 9110 §5.6.1 asks recipients to skip them).
 * - Requests (RFC 9112 §6.1, §6.3): Transfer-Encoding must be a single field whose list is
 *   exactly "chunked" (any case, OWS around it). Together with Content-Length, in HTTP/1.0,
 *   repeated, malformed, with an unregistered coding, or with chunked not last or twice: 400.
 *   A registered coding we do not implement before chunked ("gzip, chunked"): 501.
 * - Responses: Transfer-Encoding fields form one list; chunked last means chunked (Content-
 *   Length is then ignored, and must not be forwarded), otherwise the body runs to close.
 *   Transfer-Encoding in an HTTP/1.0 response, or chunked twice, is an error.
 * - A status line without the SP before an empty reason ("HTTP/1.1 200") is accepted (lenient).
 */

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const COMMA = 0x2c;
const SLASH = 0x2f;
const QUESTION = 0x3f;
const DOT = 0x2e;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const ASTERISK = 0x2a;
const DIGIT_0 = 0x30;

const MAX_LEADING_EMPTY_LINES = 4;

// Byte classes, one table so each check is a load and a mask.
const C_TCHAR = 1;
const C_VALUE = 2; // field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text
const C_TARGET = 4; // request-target bytes
const C_HOST = 8; // reg-name bytes we accept: ALPHA DIGIT "-" "." "_"
const C_HEX = 16;
const C_UPPER = 32;
const C_DIGIT = 64;

const CLASS: Uint8Array = buildClassTable();

function buildClassTable(): Uint8Array {
  const t = new Uint8Array(256);
  const mark = (chars: string, bit: number) => {
    for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] |= bit;
  };
  const range = (from: number, to: number, bit: number) => {
    for (let c = from; c <= to; c++) t[c] |= bit;
  };
  range(0x30, 0x39, C_TCHAR | C_HOST | C_HEX | C_DIGIT);
  range(0x41, 0x5a, C_TCHAR | C_HOST | C_UPPER);
  range(0x61, 0x7a, C_TCHAR | C_HOST);
  range(0x41, 0x46, C_HEX);
  range(0x61, 0x66, C_HEX);
  mark("!#$%&'*+-.^_`|~", C_TCHAR);
  mark("-._", C_HOST);
  t[HTAB] |= C_VALUE;
  range(0x20, 0x7e, C_VALUE);
  range(0x80, 0xff, C_VALUE);
  range(0x21, 0x7e, C_TARGET);
  t[0x23] &= ~C_TARGET; // "#"
  return t;
}

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * Whether buf[start..end) equals `lower` ignoring ASCII case. Only for byte ranges already
 * known to be tchars and literals of lowercase letters, digits and "-": then `| 0x20` can only
 * map a byte onto a literal byte from that same letter's other case.
 */
function equalsLower(buf: Uint8Array, start: number, end: number, lower: Uint8Array): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    if ((buf[start + i] | 0x20) !== lower[i]) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Interned strings: common header names (and Connection tokens) come out as shared strings, so
// most heads allocate no name strings at all.

const COMMON_NAMES: string[] = (
  // request fields
  "host user-agent accept accept-encoding accept-language accept-charset connection " +
  "keep-alive upgrade upgrade-insecure-requests cookie referer origin authorization " +
  "proxy-authorization proxy-connection cache-control pragma content-type content-length " +
  "content-encoding transfer-encoding te trailer expect if-none-match if-modified-since " +
  "if-match if-unmodified-since if-range range dnt priority sec-fetch-dest sec-fetch-mode " +
  "sec-fetch-site sec-fetch-user sec-ch-ua sec-ch-ua-mobile sec-ch-ua-platform sec-gpc " +
  "sec-websocket-key sec-websocket-version sec-websocket-extensions sec-websocket-protocol " +
  "x-forwarded-for x-forwarded-proto x-forwarded-host x-real-ip x-requested-with forwarded " +
  "via " +
  // response fields
  "date server location set-cookie etag last-modified expires vary age accept-ranges " +
  "content-range content-disposition content-language content-security-policy " +
  "strict-transport-security x-content-type-options x-frame-options referrer-policy " +
  "access-control-allow-origin access-control-allow-credentials www-authenticate " +
  "proxy-authenticate alt-svc retry-after " +
  // Connection tokens that are not field names
  "close"
).split(" ");

interface InternEntry {
  str: string;
  bytes: Uint8Array;
}

/*
 * The table is indexed by a hash of the lowercased bytes, which the field-name loop computes
 * as it validates them; a hit is then confirmed byte by byte. Faster than a Map keyed by
 * length and end bytes, since it needs no second look at the name to build the key.
 */
const INTERN_BITS = 9;
const INTERN_MASK = (1 << INTERN_BITS) - 1;

/** Folds one byte into a name hash; `c | 0x20` lowercases letters and is harmless for tchars. */
function hashStep(h: number, c: number): number {
  return (Math.imul(h, 31) + (c | 0x20)) | 0;
}

function internSlot(h: number): number {
  return (h ^ (h >>> INTERN_BITS)) & INTERN_MASK;
}

const internTable: (InternEntry[] | undefined)[] = new Array(INTERN_MASK + 1).fill(undefined);
for (const name of COMMON_NAMES) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = hashStep(h, name.charCodeAt(i));
  const slot = internSlot(h);
  const entry = { str: name, bytes: ascii(name) };
  (internTable[slot] ??= []).push(entry);
}

/**
 * The lowercased string for a range of tchars. `hash` is the hashStep fold of its bytes;
 * `hasUpper` says whether any byte was A–Z.
 */
function tokenString(
  buf: Uint8Array,
  text: string,
  start: number,
  end: number,
  hash: number,
  hasUpper: boolean,
): string {
  const bucket = internTable[internSlot(hash)];
  if (bucket !== undefined) {
    for (let i = 0; i < bucket.length; i++) {
      if (equalsLower(buf, start, end, bucket[i].bytes)) return bucket[i].str;
    }
  }
  const s = text.slice(start, end);
  // The range holds tchars only (ASCII), so toLowerCase() cannot meet locale rules.
  return hasUpper ? s.toLowerCase() : s;
}

const COMMON_METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]
  .map((m) => ({ str: m, bytes: ascii(m) }));

function methodString(buf: Uint8Array, text: string, start: number, end: number): string {
  const n = end - start;
  for (let i = 0; i < COMMON_METHODS.length; i++) {
    const m = COMMON_METHODS[i].bytes;
    if (m.length !== n) continue;
    let j = 0;
    while (j < n && buf[start + j] === m[j]) j++;
    if (j === n) return COMMON_METHODS[i].str;
  }
  return text.slice(start, end);
}

// ---------------------------------------------------------------------------------------------
// Finding the end of the head.

const NOT_FOUND = -1;
const BARE_LF = -2;
const BARE_CR = -3;

/**
 * Looks for the first CRLFCRLF after `from` and returns the offset just past it, if that is at
 * or before `limit`; else NOT_FOUND, or BARE_LF / BARE_CR for line endings that are not CRLF.
 *
 * This runs on every read until the head is complete, so it samples every fourth byte: the
 * terminator is four bytes long, so some sample lands on it. A sample on CR or LF walks the
 * whole run of CR/LF bytes around it, which must be CRLF pairs. Runs between samples (a
 * single line's CRLF) are skipped, and checked later by the full pass. About 3× faster than
 * looking at every byte.
 */
function findHeadEnd(buf: Uint8Array, from: number, limit: number): number {
  const n = buf.length < limit ? buf.length : limit;
  for (let k = from + 3; k < n; k += 4) {
    const c = buf[k];
    if (c !== LF && c !== CR) continue;
    let j = k;
    while (j > from && (buf[j - 1] === CR || buf[j - 1] === LF)) j--;
    let pairs = 0;
    for (;;) {
      if (j >= n) return incompleteEnd(buf, from, n);
      const d = buf[j];
      if (d === LF) return BARE_LF;
      if (d !== CR) break;
      if (j + 1 === n) return NOT_FOUND;
      if (buf[j + 1] !== LF) return BARE_CR;
      j += 2;
      if (++pairs === 2) return j;
    }
    if (j - 4 > k) k = j - 4;
  }
  return incompleteEnd(buf, from, n);
}

/**
 * NOT_FOUND, unless the bytes so far start with LF or end the way a head with bare-LF line
 * endings ends (LF LF, LF CR LF): a client that sent one is waiting for an answer, so it gets
 * its 400 now instead of at the header timeout.
 */
function incompleteEnd(buf: Uint8Array, from: number, n: number): number {
  if (from < n && buf[from] === LF) return BARE_LF;
  // Only bytes from `from` on count: the CRLFs skipped before a request line end in LF too.
  if (n - 2 >= from && buf[n - 1] === LF) {
    const before = buf[n - 2];
    if (before === LF || (before === CR && n - 3 >= from && buf[n - 3] === LF)) return BARE_LF;
  }
  return NOT_FOUND;
}

/** Whether a line starting at `from` is complete (has its LF) within `limit`. */
function hasLineEnd(buf: Uint8Array, from: number, limit: number): boolean {
  const i = buf.indexOf(LF, from);
  return i >= 0 && i < limit;
}

// ---------------------------------------------------------------------------------------------
// Field lines, shared by requests and responses.

const NO_CONTENT_LENGTH = -1;

// Transfer-Encoding list analysis, as bits.
const TE_MALFORMED = 1; // an element is empty or not a token (e.g. "chunked;q=1")
const TE_CHUNKED_LAST = 2; // the final coding is chunked
const TE_CHUNKED_TWICE = 4; // chunked appears more than once (RFC 9112 §6.1: at most once)
const TE_CHUNKED_NOT_LAST = 8; // chunked appears before another coding
const TE_REGISTERED = 16; // a registered coding we do not implement (gzip, deflate, ...)
const TE_UNKNOWN = 32; // an unregistered token ("xchunked", "chunk", "identity")
const TE_ANY_CHUNKED = TE_CHUNKED_LAST | TE_CHUNKED_NOT_LAST;

const LIT_CHUNKED = ascii("chunked");
const LIT_CLOSE = ascii("close");
const LIT_KEEP_ALIVE = ascii("keep-alive");
const LIT_UPGRADE = ascii("upgrade");
const LIT_100_CONTINUE = ascii("100-continue");
const LIT_HTTP_SLASH = ascii("HTTP/");
// RFC 9110 §18.7 / IANA HTTP Transfer Coding registry, minus chunked, trailers and the
// deprecated identity.
const REGISTERED_CODINGS = ["gzip", "deflate", "compress", "x-gzip", "x-compress"].map(ascii);

/** Collects what the field-line pass learns; one per parse. */
class FieldScan {
  headers: [string, string][] = [];
  connection: string[] = [];
  hostCount = 0;
  hostStart = 0;
  hostEnd = 0;
  contentLength = NO_CONTENT_LENGTH;
  teCount = 0;
  teFlags = 0;
  upgrade: string | null = null;
  expectContinue = false;
  closeToken = false;
  keepAliveToken = false;
  upgradeToken = false;
  /** Set when a parse step fails. */
  status: 400 | 431 = 400;
  reason = "";

  fail(status: 400 | 431, reason: string): false {
    this.status = status;
    this.reason = reason;
    return false;
  }

  /**
   * Parses field lines from `p` (the start of the first one) up to the empty line that ends the
   * head. The caller has found that CRLFCRLF (the first one in `buf`), so the loops below need
   * no bounds checks: none of them passes a CR.
   */
  parse(buf: Uint8Array, text: string, p: number, maxHeaders: number): boolean {
    const headers = this.headers;
    for (;;) {
      let c = buf[p];
      if (c === CR) {
        // CRLF at the start of a line is the empty line findHeadEnd found; CR alone is bare.
        if (buf[p + 1] !== LF) return this.fail(400, "bare cr in head");
        return true;
      }
      if (c === SP || c === HTAB) return this.fail(400, "obs-fold in header field");
      if (c === LF) return this.fail(400, "bare lf in head");

      const nameStart = p;
      let upper = 0;
      let hash = 0;
      for (;;) {
        const k = CLASS[c];
        if ((k & C_TCHAR) === 0) break;
        upper |= k;
        hash = hashStep(hash, c);
        c = buf[++p];
      }
      if (c !== COLON) {
        if (c === SP || c === HTAB) {
          return this.fail(400, "whitespace before colon in header field");
        }
        if (c === CR) return this.fail(400, "header field without colon");
        if (c === LF) return this.fail(400, "bare lf in head");
        return this.fail(400, "invalid header field name");
      }
      if (p === nameStart) return this.fail(400, "empty header field name");
      const nameEnd = p;

      c = buf[++p];
      while (c === SP || c === HTAB) c = buf[++p];
      const valueStart = p;
      while ((CLASS[c] & C_VALUE) !== 0) c = buf[++p];
      if (c !== CR) {
        return this.fail(400, c === LF ? "bare lf in head" : "invalid byte in header field value");
      }
      if (buf[p + 1] !== LF) return this.fail(400, "bare cr in head");
      let valueEnd = p;
      while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) {
        valueEnd--;
      }
      p += 2;

      if (headers.length === maxHeaders) return this.fail(431, "too many header fields");
      const name = tokenString(buf, text, nameStart, nameEnd, hash, (upper & C_UPPER) !== 0);
      const value = text.slice(valueStart, valueEnd);
      headers.push([name, value]);

      // Only these six names change framing or connection handling; the rest pass through.
      switch (name) {
        case "host":
          this.hostCount++;
          this.hostStart = valueStart;
          this.hostEnd = valueEnd;
          break;
        case "content-length": {
          const n = parseContentLength(buf, valueStart, valueEnd);
          if (n < 0) return this.fail(400, "invalid content-length");
          if (this.contentLength !== NO_CONTENT_LENGTH && this.contentLength !== n) {
            return this.fail(400, "conflicting content-length values");
          }
          this.contentLength = n;
          break;
        }
        case "transfer-encoding": {
          // Several fields form one list (RFC 9110 §5.3): codings in a later field come after
          // the chunked of an earlier one.
          const flags = analyseTransferEncoding(buf, valueStart, valueEnd);
          let combined = this.teFlags;
          if ((combined & TE_CHUNKED_LAST) !== 0) {
            combined = (combined & ~TE_CHUNKED_LAST) | TE_CHUNKED_NOT_LAST;
            if ((flags & TE_ANY_CHUNKED) !== 0) combined |= TE_CHUNKED_TWICE;
          } else if ((combined & TE_CHUNKED_NOT_LAST) !== 0 && (flags & TE_ANY_CHUNKED) !== 0) {
            combined |= TE_CHUNKED_TWICE;
          }
          this.teFlags = combined | flags;
          this.teCount++;
          break;
        }
        case "connection":
          if (!this.#connectionTokens(buf, text, valueStart, valueEnd)) {
            return this.fail(400, "invalid connection field");
          }
          break;
        case "upgrade":
          this.upgrade = this.upgrade === null ? value : `${this.upgrade}, ${value}`;
          break;
        case "expect":
          if (equalsLowerValue(buf, valueStart, valueEnd, LIT_100_CONTINUE)) {
            this.expectContinue = true;
          }
          break;
      }
    }
  }

  #connectionTokens(buf: Uint8Array, text: string, start: number, end: number): boolean {
    let p = start;
    while (p < end) {
      let c = buf[p];
      if (c === COMMA || c === SP || c === HTAB) {
        p++;
        continue;
      }
      const tokenStart = p;
      let upper = 0;
      let hash = 0;
      for (;;) {
        const k = CLASS[c];
        if ((k & C_TCHAR) === 0) break;
        upper |= k;
        hash = hashStep(hash, c);
        if (++p === end) break;
        c = buf[p];
      }
      if (p === tokenStart) return false;
      const tokenEnd = p;
      while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
      if (p < end && buf[p] !== COMMA) return false;
      if (equalsLower(buf, tokenStart, tokenEnd, LIT_CLOSE)) this.closeToken = true;
      else if (equalsLower(buf, tokenStart, tokenEnd, LIT_KEEP_ALIVE)) this.keepAliveToken = true;
      else if (equalsLower(buf, tokenStart, tokenEnd, LIT_UPGRADE)) this.upgradeToken = true;
      this.connection.push(
        tokenString(buf, text, tokenStart, tokenEnd, hash, (upper & C_UPPER) !== 0),
      );
    }
    return true;
  }
}

/** Like equalsLower, for arbitrary field-value bytes (non-letters must match exactly). */
function equalsLowerValue(buf: Uint8Array, start: number, end: number, lower: Uint8Array): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = buf[start + i];
    const l = lower[i];
    if (c !== l && !(l >= 0x61 && l <= 0x7a && c === l - 0x20)) return false;
  }
  return true;
}

/**
 * Content-Length = 1*DIGIT (RFC 9110 §8.6), or a list of identical values ("5, 5"), which
 * §8.6 lets a recipient reduce to one. Returns the value, or -1 when the field is invalid or
 * its values differ. Leading zeros are accepted: every parser reads them as decimal.
 */
function parseContentLength(buf: Uint8Array, start: number, end: number): number {
  let result = NO_CONTENT_LENGTH;
  let p = start;
  for (;;) {
    const digitsStart = p;
    let n = 0;
    while (p < end && (CLASS[buf[p]] & C_DIGIT) !== 0) {
      n = n * 10 + (buf[p] - DIGIT_0);
      if (n > Number.MAX_SAFE_INTEGER) return -1;
      p++;
    }
    if (p === digitsStart) return -1;
    if (result !== NO_CONTENT_LENGTH && result !== n) return -1;
    result = n;
    if (p === end) return result;
    while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
    if (p === end || buf[p] !== COMMA) return -1;
    p++;
    while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
  }
}

/** Reads a Transfer-Encoding list (RFC 9112 §6.1) into TE_* bits. */
function analyseTransferEncoding(buf: Uint8Array, start: number, end: number): number {
  let flags = 0;
  let chunkedSeen = false;
  let p = start;
  if (p === end) return TE_MALFORMED;
  for (;;) {
    const tokenStart = p;
    while (p < end && (CLASS[buf[p]] & C_TCHAR) !== 0) p++;
    const tokenEnd = p;
    if (tokenEnd === tokenStart) return flags | TE_MALFORMED;
    while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
    if (p < end && buf[p] !== COMMA) return flags | TE_MALFORMED; // parameters, quotes, ...
    const isLast = p === end;

    if (equalsLower(buf, tokenStart, tokenEnd, LIT_CHUNKED)) {
      if (chunkedSeen) flags |= TE_CHUNKED_TWICE;
      chunkedSeen = true;
      if (isLast) flags |= TE_CHUNKED_LAST;
      else flags |= TE_CHUNKED_NOT_LAST;
    } else {
      let registered = false;
      for (let i = 0; i < REGISTERED_CODINGS.length; i++) {
        if (equalsLower(buf, tokenStart, tokenEnd, REGISTERED_CODINGS[i])) registered = true;
      }
      flags |= registered ? TE_REGISTERED : TE_UNKNOWN;
    }
    if (isLast) return flags;
    p++;
    while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
    if (p === end) return flags | TE_MALFORMED; // trailing comma
  }
}

// ---------------------------------------------------------------------------------------------
// Authorities (RFC 3986 §3.2.2, narrowed as described at the top).

/**
 * An authority given as text (HTTP/2 `:authority`) checked by the same rules as a Host field:
 * the lowercased `host[:port]`, or null when it is not acceptable (a port of 0, over 65535,
 * zero-padded or not digits; a character outside the host grammar; anything above U+00FF).
 */
export function checkAuthority(text: string): string | null {
  const buf = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e) return null;
    buf[i] = c;
  }
  return parseAuthority(buf, text, 0, buf.length, false);
}

/** Lowercased `host[:port]` for buf[start..end), or null if it is not acceptable. */
function parseAuthority(
  buf: Uint8Array,
  text: string,
  start: number,
  end: number,
  requirePort: boolean,
): string | null {
  if (start === end) return null;
  let p = start;
  let upper = 0;
  if (buf[p] === LBRACKET) {
    const close = buf.indexOf(RBRACKET, p);
    if (close < 0 || close >= end || !isIPv6(buf, p + 1, close)) return null;
    for (let i = p + 1; i < close; i++) upper |= CLASS[buf[i]];
    p = close + 1;
  } else {
    // Labels: non-empty, except that the name may end with one dot.
    let labelStart = p;
    let lastLabelStart = p;
    let lastLabelEnd = p;
    for (;;) {
      const c = p < end ? buf[p] : COLON;
      if (c === DOT || c === COLON) {
        if (p === labelStart) {
          // An empty label is only the one after a trailing dot.
          if (c === DOT || p === start || buf[p - 1] !== DOT || p - 1 === start) return null;
        } else {
          lastLabelStart = labelStart;
          lastLabelEnd = p;
        }
        if (c === COLON) break;
        labelStart = ++p;
        continue;
      }
      const k = CLASS[c];
      if ((k & C_HOST) === 0) return null;
      upper |= k;
      p++;
    }
    if (endsInNumber(buf, lastLabelStart, lastLabelEnd) && !isIPv4(buf, start, p)) return null;
  }
  if (p < end) {
    if (buf[p] !== COLON || !isPort(buf, p + 1, end)) return null;
  } else if (requirePort) {
    return null;
  }
  const s = text.slice(start, end);
  return (upper & C_UPPER) !== 0 ? s.toLowerCase() : s;
}

/** WHATWG URL's "ends in a number": all digits, or "0x" followed by hex digits. */
function endsInNumber(buf: Uint8Array, start: number, end: number): boolean {
  let p = start;
  while (p < end && (CLASS[buf[p]] & C_DIGIT) !== 0) p++;
  if (p === end) return true;
  if (end - start >= 2 && buf[start] === DIGIT_0 && (buf[start + 1] | 0x20) === 0x78) {
    for (p = start + 2; p < end; p++) if ((CLASS[buf[p]] & C_HEX) === 0) return false;
    return true;
  }
  return false;
}

/** A strict dotted quad: four decimal octets 0–255 without leading zeros. */
function isIPv4(buf: Uint8Array, start: number, end: number): boolean {
  let p = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (p >= end || buf[p] !== DOT) return false;
      p++;
    }
    const digitsStart = p;
    let n = 0;
    while (p < end && (CLASS[buf[p]] & C_DIGIT) !== 0 && p - digitsStart < 3) {
      n = n * 10 + (buf[p] - DIGIT_0);
      p++;
    }
    const digits = p - digitsStart;
    if (digits === 0 || n > 255 || (digits > 1 && buf[digitsStart] === DIGIT_0)) return false;
  }
  return p === end;
}

/** RFC 3986 IPv6address (no zone identifier, no IPvFuture). */
function isIPv6(buf: Uint8Array, start: number, end: number): boolean {
  let p = start;
  let groups = 0;
  let compressed = false;
  if (p < end && buf[p] === COLON) {
    if (p + 1 >= end || buf[p + 1] !== COLON) return false;
    compressed = true;
    p += 2;
    if (p === end) return true;
  }
  for (;;) {
    const groupStart = p;
    while (p < end && (CLASS[buf[p]] & C_HEX) !== 0 && p - groupStart < 5) p++;
    if (p === groupStart) return false;
    if (p < end && buf[p] === DOT) {
      // An embedded IPv4 address ends the literal and fills two groups.
      if (!isIPv4(buf, groupStart, end)) return false;
      groups += 2;
      break;
    }
    if (p - groupStart > 4) return false;
    groups++;
    if (p === end) break;
    if (buf[p] !== COLON) return false;
    p++;
    if (p === end) return false; // a single trailing colon
    if (buf[p] === COLON) {
      if (compressed) return false;
      compressed = true;
      p++;
      if (p === end) break;
    }
  }
  return compressed ? groups <= 7 : groups === 8;
}

/** 1–65535, digits only, no leading zero. */
function isPort(buf: Uint8Array, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > 5 || buf[start] === DIGIT_0) return false;
  let v = 0;
  for (let p = start; p < end; p++) {
    const c = buf[p];
    if ((CLASS[c] & C_DIGIT) === 0) return false;
    v = v * 10 + (c - DIGIT_0);
  }
  return v <= 65535;
}

// ---------------------------------------------------------------------------------------------
// Version.

const VERSION_BAD = 0;
const VERSION_UNSUPPORTED = 1;
type ParsedVersion = typeof VERSION_BAD | typeof VERSION_UNSUPPORTED | 10 | 11;

/** 10 or 11 for HTTP/1.0 and HTTP/1.1; VERSION_UNSUPPORTED for another HTTP/d.d; else BAD. */
function parseVersion(buf: Uint8Array, start: number, end: number): ParsedVersion {
  if (end - start !== 8) return VERSION_BAD;
  for (let i = 0; i < 5; i++) if (buf[start + i] !== LIT_HTTP_SLASH[i]) return VERSION_BAD;
  const major = buf[start + 5];
  const minor = buf[start + 7];
  if (
    (CLASS[major] & C_DIGIT) === 0 || buf[start + 6] !== DOT || (CLASS[minor] & C_DIGIT) === 0
  ) {
    return VERSION_BAD;
  }
  if (major !== 0x31 || (minor !== 0x30 && minor !== 0x31)) return VERSION_UNSUPPORTED;
  return minor === 0x31 ? 11 : 10;
}

// ---------------------------------------------------------------------------------------------
// Requests.

type RequestError = Extract<RequestHeadResult, { kind: "error" }>;
const INCOMPLETE: { kind: "incomplete" } = Object.freeze({ kind: "incomplete" });

function requestError(status: RequestError["status"], reason: string): RequestError {
  return { kind: "error", status, reason };
}

/**
 * Parses an HTTP/1.x request head from the start of `buf`.
 *
 * @param buf bytes received so far on the connection, starting at the request (extra bytes
 *   after the head, such as a body or a pipelined request, are left alone)
 * @param limits caps on the head; {@linkcode DEFAULT_HEAD_LIMITS} when omitted
 * @returns `incomplete` until the head's final CRLFCRLF has arrived, then `head` or `error`
 *   with the status to answer (400, 414 request line too long, 431 head too large or too many
 *   fields, 501 unsupported transfer coding, 505 unsupported HTTP version)
 */
export function parseRequestHead(
  buf: Uint8Array,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
): RequestHeadResult {
  const len = buf.length;
  const maxHeadBytes = limits.maxHeadBytes;

  // RFC 9112 §2.2: a client may send an extra CRLF after a POST body; skip a few.
  let start = 0;
  let emptyLines = 0;
  while (start < len && buf[start] === CR) {
    if (start + 1 === len) return INCOMPLETE;
    if (buf[start + 1] !== LF) return requestError(400, "bare cr in head");
    start += 2;
    if (++emptyLines > MAX_LEADING_EMPTY_LINES) {
      return requestError(400, "too many empty lines before request line");
    }
  }

  const end = findHeadEnd(buf, start, maxHeadBytes);
  if (end === BARE_LF) return requestError(400, "bare lf in head");
  if (end === BARE_CR) return requestError(400, "bare cr in head");
  if (end === NOT_FOUND) {
    if (len < maxHeadBytes) return INCOMPLETE;
    return hasLineEnd(buf, start, maxHeadBytes)
      ? requestError(431, "request head too large")
      : requestError(414, "request line too long");
  }

  // One native decode of the whole head; every string below is a slice of it, which is much
  // cheaper than a decode per field (each native call costs ~40 ns, a slice ~10 ns).
  const text = decodeLatin1(buf, 0, end);

  // Request line.
  let p = start;
  while ((CLASS[buf[p]] & C_TCHAR) !== 0) p++;
  if (p === start || buf[p] !== SP) {
    return requestError(400, buf[p] === LF ? "bare lf in head" : "invalid method");
  }
  const method = methodString(buf, text, start, p);

  const targetStart = ++p;
  while ((CLASS[buf[p]] & C_TARGET) !== 0) p++;
  if (p === targetStart) return requestError(400, "invalid request-target");
  if (buf[p] !== SP) {
    if (buf[p] === LF) return requestError(400, "bare lf in head");
    if (buf[p] !== CR) return requestError(400, "invalid request-target");
    return requestError(400, buf[p + 1] === LF ? "missing http version" : "bare cr in head");
  }
  const targetEnd = p;

  const versionStart = ++p;
  while (buf[p] > SP && buf[p] < 0x7f) p++;
  if (buf[p] !== CR) {
    return requestError(400, buf[p] === LF ? "bare lf in head" : "invalid http version");
  }
  if (buf[p + 1] !== LF) return requestError(400, "bare cr in head");
  const version = parseVersion(buf, versionStart, p);
  if (version === VERSION_BAD) return requestError(400, "invalid http version");
  if (version === VERSION_UNSUPPORTED) return requestError(505, "unsupported http version");
  p += 2;

  // Request-target forms (RFC 9112 §3.2).
  let form: RequestHead["form"];
  let path = "";
  let targetAuthority: string | null = null;
  const first = buf[targetStart];
  if (first === SLASH) {
    form = "origin";
    if (method === "CONNECT") return requestError(400, "connect needs an authority-form target");
  } else if (first === ASTERISK && targetEnd - targetStart === 1) {
    form = "asterisk";
    if (method !== "OPTIONS") return requestError(400, "asterisk-form target without options");
  } else if (method === "CONNECT") {
    form = "authority";
    targetAuthority = parseAuthority(buf, text, targetStart, targetEnd, true);
    if (targetAuthority === null) return requestError(400, "invalid authority-form target");
  } else {
    form = "absolute";
    const authorityStart = absoluteAuthorityStart(buf, targetStart, targetEnd);
    if (authorityStart < 0) return requestError(400, "invalid absolute-form target");
    let authorityEnd = authorityStart;
    while (authorityEnd < targetEnd) {
      const c = buf[authorityEnd];
      if (c === SLASH || c === QUESTION) break;
      if (c === 0x40) return requestError(400, "userinfo in absolute-form target");
      authorityEnd++;
    }
    targetAuthority = parseAuthority(buf, text, authorityStart, authorityEnd, false);
    if (targetAuthority === null) return requestError(400, "invalid absolute-form target");
    if (authorityEnd === targetEnd) path = "/";
    else if (buf[authorityEnd] === QUESTION) {
      path = "/" + text.slice(authorityEnd, targetEnd);
    } else path = text.slice(authorityEnd, targetEnd);
  }
  const target = text.slice(targetStart, targetEnd);
  if (form === "origin") path = target;

  // Field lines.
  const fields = new FieldScan();
  if (!fields.parse(buf, text, p, limits.maxHeaders)) {
    return requestError(fields.status, fields.reason);
  }

  // Host (RFC 9112 §3.2): required in 1.1, never twice, always valid when present.
  let authority = targetAuthority;
  if (fields.hostCount > 1) return requestError(400, "multiple host fields");
  if (fields.hostCount === 0) {
    if (version === 11) return requestError(400, "missing host");
  } else if (fields.hostStart === fields.hostEnd) {
    if (version === 11) return requestError(400, "empty host");
  } else {
    const host = parseAuthority(buf, text, fields.hostStart, fields.hostEnd, false);
    if (host === null) return requestError(400, "invalid host");
    if (authority === null) authority = host;
  }

  // Framing (RFC 9112 §6.1–6.3).
  let body: BodyFraming;
  if (fields.teCount > 0) {
    if (fields.contentLength !== NO_CONTENT_LENGTH) {
      return requestError(400, "both transfer-encoding and content-length");
    }
    if (version === 10) return requestError(400, "transfer-encoding in http/1.0 request");
    if (fields.teCount > 1) return requestError(400, "multiple transfer-encoding fields");
    const te = fields.teFlags;
    if ((te & TE_MALFORMED) !== 0) return requestError(400, "malformed transfer-encoding");
    if ((te & TE_UNKNOWN) !== 0) return requestError(400, "unknown transfer coding");
    if ((te & (TE_CHUNKED_TWICE | TE_CHUNKED_NOT_LAST)) !== 0 || (te & TE_CHUNKED_LAST) === 0) {
      return requestError(400, "chunked is not the final transfer coding");
    }
    if ((te & TE_REGISTERED) !== 0) return requestError(501, "unsupported transfer coding");
    body = { kind: "chunked" };
  } else if (fields.contentLength !== NO_CONTENT_LENGTH) {
    body = { kind: "length", length: fields.contentLength };
  } else {
    body = { kind: "none" };
  }

  const keepAlive = version === 11
    ? !fields.closeToken
    : fields.keepAliveToken && !fields.closeToken;
  return {
    kind: "head",
    head: {
      method,
      target,
      form,
      path,
      authority,
      version,
      headers: fields.headers,
      body,
      keepAlive,
      connection: fields.connection,
      upgrade: version === 11 && fields.upgradeToken ? fields.upgrade : null,
      expectContinue: version === 11 && fields.expectContinue,
      end,
    },
  };
}

const LIT_HTTP = ascii("http");
const LIT_HTTPS = ascii("https");

/**
 * For `http://` or `https://` (scheme in any case) at buf[start..], the offset of the
 * authority; -1 for any other target.
 */
function absoluteAuthorityStart(buf: Uint8Array, start: number, end: number): number {
  let p = start;
  while (p < end && buf[p] !== COLON) {
    if ((CLASS[buf[p]] & C_HOST) === 0) return -1;
    p++;
  }
  if (!equalsLower(buf, start, p, LIT_HTTP) && !equalsLower(buf, start, p, LIT_HTTPS)) return -1;
  if (end - p < 3 || buf[p + 1] !== SLASH || buf[p + 2] !== SLASH) return -1;
  return p + 3;
}

// ---------------------------------------------------------------------------------------------
// Responses.

function responseError(reason: string): { kind: "error"; reason: string } {
  return { kind: "error", reason };
}

/**
 * Parses an HTTP/1.x response head from the start of `buf`.
 *
 * @param buf bytes received so far from the backend, starting at the response
 * @param requestMethod the method of the request this answers: HEAD and CONNECT change framing
 * @param limits caps on the head; {@linkcode DEFAULT_HEAD_LIMITS} when omitted
 * @returns `incomplete` until the head's final CRLFCRLF has arrived, then `head` or `error`
 */
export function parseResponseHead(
  buf: Uint8Array,
  requestMethod: string,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
): ResponseHeadResult {
  const len = buf.length;
  if (len > 0 && (buf[0] === CR || buf[0] === LF)) {
    return responseError("empty line before status line");
  }
  const end = findHeadEnd(buf, 0, limits.maxHeadBytes);
  if (end === BARE_LF) return responseError("bare lf in head");
  if (end === BARE_CR) return responseError("bare cr in head");
  if (end === NOT_FOUND) {
    return len < limits.maxHeadBytes ? INCOMPLETE : responseError("response head too large");
  }

  const text = decodeLatin1(buf, 0, end);

  // Status line: HTTP-version SP 3DIGIT [SP reason-phrase] CRLF.
  let p = 0;
  while (p < 8 && buf[p] !== SP && buf[p] !== CR) p++;
  const version = parseVersion(buf, 0, p);
  if (version === VERSION_BAD) return responseError("invalid http version");
  if (version === VERSION_UNSUPPORTED) return responseError("unsupported http version");
  if (
    buf[8] !== SP || (CLASS[buf[9]] & C_DIGIT) === 0 || (CLASS[buf[10]] & C_DIGIT) === 0 ||
    (CLASS[buf[11]] & C_DIGIT) === 0
  ) {
    return responseError("invalid status code");
  }
  const status = (buf[9] - DIGIT_0) * 100 + (buf[10] - DIGIT_0) * 10 + (buf[11] - DIGIT_0);
  if (status < 100 || status > 599) return responseError("invalid status code");
  p = 12;
  let reason = "";
  if (buf[p] === SP) {
    const reasonStart = ++p;
    while ((CLASS[buf[p]] & C_VALUE) !== 0) p++;
    if (buf[p] !== CR) {
      return responseError(buf[p] === LF ? "bare lf in head" : "invalid byte in reason phrase");
    }
    reason = text.slice(reasonStart, p);
  } else if (buf[p] !== CR) {
    return responseError("invalid status code");
  }
  if (buf[p + 1] !== LF) return responseError("bare cr in head");
  p += 2;

  const fields = new FieldScan();
  if (!fields.parse(buf, text, p, limits.maxHeaders)) return responseError(fields.reason);

  // Framing, RFC 9112 §6.3 in its order.
  let body: BodyFraming;
  const te = fields.teFlags;
  if (fields.teCount > 0 && version === 10) {
    // §6.1: framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
    return responseError("transfer-encoding in http/1.0 response");
  }
  if (fields.teCount > 0 && (te & (TE_MALFORMED | TE_CHUNKED_TWICE)) !== 0) {
    return responseError("malformed transfer-encoding");
  }
  if (requestMethod === "HEAD" || status < 200 || status === 204 || status === 304) {
    body = { kind: "none" };
  } else if (requestMethod === "CONNECT" && status < 300) {
    body = { kind: "none" };
  } else if (fields.teCount > 0) {
    // Chunked as the final coding wins over Content-Length (§6.3 item 3); a proxy forwarding
    // this must drop Content-Length. Otherwise the body runs to close (item 4).
    body = (te & TE_CHUNKED_LAST) !== 0 ? { kind: "chunked" } : { kind: "close" };
  } else if (fields.contentLength !== NO_CONTENT_LENGTH) {
    body = { kind: "length", length: fields.contentLength };
  } else {
    body = { kind: "close" };
  }

  const keepAlive = body.kind !== "close" &&
    (version === 11 ? !fields.closeToken : fields.keepAliveToken && !fields.closeToken);
  return {
    kind: "head",
    head: {
      version,
      status,
      reason,
      headers: fields.headers,
      body,
      keepAlive,
      connection: fields.connection,
      end,
    },
  };
}
