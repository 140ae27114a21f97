/**
 * An incremental scanner for the chunked transfer coding (RFC 9112 §7.1).
 *
 * It does not decode: a proxy forwards the chunked bytes as they are and only needs to know
 * where the body ends, and that the framing is one every parser downstream reads the same way.
 * So it is strict where parsers are known to disagree (sizes, line endings, the CRLF after
 * chunk data) and merely bounded where they do not (extension contents, trailer values).
 *
 * @module
 */

/*
 * Wire grammar (RFC 9112 §7.1, §7.1.1, §7.1.2; RFC 9110 §5.5):
 *
 *   chunked-body   = *chunk last-chunk trailer-section CRLF
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size     = 1*HEXDIG
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   trailer-section = *( field-line CRLF )
 *
 * What we check:
 * - chunk-size: hex digits only (no sign, "0x", or whitespace before them), at most
 *   MAX_SIZE_DIGITS of them and at most Number.MAX_SAFE_INTEGER.
 * - After the size: CRLF, ";", or SP/HTAB that must lead to ";" (the BWS above). Bytes after
 *   ";" up to CRLF may be anything but CTLs (HTAB allowed); their finer grammar is not checked,
 *   since no byte in them can end the line early. The whole line is capped.
 * - chunk-data is followed by exactly CRLF.
 * - Trailer lines are field lines: a token name, ":", no CTL but HTAB in the value, no
 *   obs-fold; the section, final CRLF included, is capped.
 * - Every CR is followed by LF and every LF follows a CR.
 */

/** Caps for {@linkcode ChunkedScanner}. */
export interface ChunkedLimits {
  /** Bytes in a chunk-size line, extensions included, CRLF excluded. Default 4096. */
  maxChunkLineBytes?: number;
  /** Bytes after the last-chunk line, the final CRLF included. Default 16384. */
  maxTrailerBytes?: number;
}

/** What one {@linkcode ChunkedScanner.scan} call found. */
export type ChunkedScanResult =
  /**
   * `consumed` bytes from `start` belong to the body. Until `done`, that is all of them; when
   * `done`, the bytes after `start + consumed` belong to whatever follows the body.
   */
  | { consumed: number; done: boolean }
  /** The body is malformed; `error` is a short lowercase phrase for logs. */
  | { error: string };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SEMICOLON = 0x3b;
const COLON = 0x3a;

const MAX_SIZE_DIGITS = 16;

const HEX_VALUE: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i;
    t[0x61 + i] = 10 + i;
  }
  return t;
})();

const TCHAR: Uint8Array = (() => {
  const t = new Uint8Array(256);
  const chars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
})();

/** Bytes that may appear in an extension or a trailer value: not a CTL, except HTAB. */
function isTextByte(c: number): boolean {
  return c === HTAB || (c >= 0x20 && c !== 0x7f);
}

// Scanner states. Plain numbers rather than an enum so that each check is a small-integer
// comparison with no object lookup.
const SIZE_FIRST = 0; // at the first byte of a chunk-size line
const SIZE = 1; // inside the hex digits
const SIZE_SPACE = 2; // whitespace after the digits; only ";" may follow
const EXTENSION = 3; // after ";" up to CR
const SIZE_LF = 4; // after the CR of a chunk-size line
const DATA = 5; // inside chunk-data
const DATA_CR = 6; // chunk-data done, CR expected
const DATA_LF = 7;
const TRAILER_LINE_START = 8; // at the start of a trailer line or of the final CRLF
const TRAILER_NAME = 9;
const TRAILER_VALUE = 10;
const TRAILER_LF = 11; // after the CR of a trailer line
const FINAL_LF = 12; // after the CR of the final empty line
const DONE = 13;
const FAILED = 14;

/**
 * Follows a chunked body through any number of reads, reporting how many bytes of each read
 * belong to it and when it ends. One scanner per body.
 *
 * @example
 * ```ts
 * import { ChunkedScanner } from "./chunked.ts";
 * const scanner = new ChunkedScanner();
 * const bytes = new TextEncoder().encode("5\r\nhello\r\n0\r\n\r\nGET /next");
 * const r = scanner.scan(bytes, 0, bytes.length);
 * // r is { consumed: 15, done: true }: "GET /next" is not part of the body.
 * ```
 */
export class ChunkedScanner {
  #state = SIZE_FIRST;
  #size = 0; // the chunk-size being read, then the chunk-data bytes still expected
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  #error = "";
  readonly #maxLine: number;
  readonly #maxTrailer: number;

  constructor(limits: ChunkedLimits = {}) {
    this.#maxLine = limits.maxChunkLineBytes ?? 4096;
    this.#maxTrailer = limits.maxTrailerBytes ?? 16384;
  }

  /** Whether the whole body, trailers and final CRLF included, has been seen. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Looks at `buf[start..end)`, which continues the body where the previous call stopped.
   * `onData`, when given, is told each run of chunk-data bytes (positions in `buf`), so the same
   * scanner both forwards a chunked body verbatim and decodes it.
   *
   * @returns how many of those bytes belong to the body and whether it ended, or an error.
   *   After `done`, further calls consume nothing; after an error, they repeat it.
   * @throws {RangeError} when `start..end` is not a range inside `buf` (a caller bug)
   */
  scan(
    buf: Uint8Array,
    start: number,
    end: number,
    onData?: (from: number, to: number) => void,
  ): ChunkedScanResult {
    if (!(start >= 0 && start <= end && end <= buf.length)) {
      throw new RangeError(
        `Cannot scan bytes ${start}..${end} of a ${buf.length}-byte buffer: the range must lie inside it`,
      );
    }
    if (this.#state === FAILED) return { error: this.#error };
    let p = start;
    let state = this.#state;
    while (p < end) {
      if (state === DATA) {
        // The hot case: skip chunk-data without looking at it.
        const n = Math.min(this.#size, end - p);
        if (onData !== undefined && n > 0) onData(p, p + n);
        p += n;
        this.#size -= n;
        if (this.#size === 0) state = DATA_CR;
        continue;
      }
      const c = buf[p];
      switch (state) {
        case SIZE_FIRST: {
          const v = HEX_VALUE[c];
          if (v < 0) return this.#fail("invalid chunk size");
          this.#size = v;
          this.#digits = 1;
          this.#lineBytes = 1;
          state = SIZE;
          break;
        }
        case SIZE: {
          if (c === CR) {
            state = SIZE_LF;
            break;
          }
          if (++this.#lineBytes > this.#maxLine) return this.#fail("chunk size line too long");
          const v = HEX_VALUE[c];
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) return this.#fail("chunk size too large");
            this.#size = this.#size * 16 + v;
            if (this.#size > Number.MAX_SAFE_INTEGER) return this.#fail("chunk size too large");
          } else if (c === SEMICOLON) {
            state = EXTENSION;
          } else if (c === SP || c === HTAB) {
            state = SIZE_SPACE;
          } else {
            return this.#fail("invalid chunk size");
          }
          break;
        }
        case SIZE_SPACE:
          if (++this.#lineBytes > this.#maxLine) return this.#fail("chunk size line too long");
          if (c === SEMICOLON) state = EXTENSION;
          else if (c !== SP && c !== HTAB) return this.#fail("whitespace after chunk size");
          break;
        case EXTENSION:
          if (c === CR) {
            state = SIZE_LF;
          } else {
            if (++this.#lineBytes > this.#maxLine) return this.#fail("chunk size line too long");
            if (!isTextByte(c)) return this.#fail("invalid byte in chunk extension");
          }
          break;
        case SIZE_LF:
          if (c !== LF) return this.#fail("bare cr in chunk size line");
          state = this.#size === 0 ? TRAILER_LINE_START : DATA;
          break;
        case DATA_CR:
          if (c !== CR) return this.#fail("chunk data not followed by crlf");
          state = DATA_LF;
          break;
        case DATA_LF:
          if (c !== LF) return this.#fail("chunk data not followed by crlf");
          state = SIZE_FIRST;
          break;
        case TRAILER_LINE_START:
          if (++this.#trailerBytes > this.#maxTrailer) {
            return this.#fail("trailer section too large");
          }
          if (c === CR) state = FINAL_LF;
          else if (TCHAR[c] === 1) state = TRAILER_NAME;
          else if (c === SP || c === HTAB) return this.#fail("obs-fold in trailer section");
          else return this.#fail("invalid trailer field");
          break;
        case TRAILER_NAME:
          if (++this.#trailerBytes > this.#maxTrailer) {
            return this.#fail("trailer section too large");
          }
          if (c === COLON) state = TRAILER_VALUE;
          else if (TCHAR[c] !== 1) return this.#fail("invalid trailer field");
          break;
        case TRAILER_VALUE:
          if (++this.#trailerBytes > this.#maxTrailer) {
            return this.#fail("trailer section too large");
          }
          if (c === CR) state = TRAILER_LF;
          else if (!isTextByte(c)) return this.#fail("invalid byte in trailer field");
          break;
        case TRAILER_LF:
          if (++this.#trailerBytes > this.#maxTrailer) {
            return this.#fail("trailer section too large");
          }
          if (c !== LF) return this.#fail("bare cr in trailer section");
          state = TRAILER_LINE_START;
          break;
        case FINAL_LF:
          if (++this.#trailerBytes > this.#maxTrailer) {
            return this.#fail("trailer section too large");
          }
          if (c !== LF) return this.#fail("bare cr in trailer section");
          this.#state = DONE;
          return { consumed: p + 1 - start, done: true };
        case DONE:
          return { consumed: p - start, done: true };
      }
      p++;
    }
    this.#state = state;
    return { consumed: p - start, done: state === DONE };
  }

  #fail(reason: string): { error: string } {
    this.#state = FAILED;
    this.#error = reason;
    return { error: reason };
  }
}
