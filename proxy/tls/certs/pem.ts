/**
 * Splitting PEM text (RFC 7468) into its blocks: pure, no I/O.
 *
 * Text outside blocks is allowed and skipped, as RFC 7468 §2 allows (certbot, openssl and
 * hand-made bundles put comments or `Bag Attributes` there), and so are CRLF line ends and
 * indentation. Inside a block the base64 must be exact: only the base64 alphabet and
 * whitespace, correct padding, and zero padding bits. A PEM file that decodes "loosely" would
 * turn a truncated copy-paste into a confusing TLS failure later instead of a clear message
 * now.
 *
 * @module
 */

/** One `-----BEGIN LABEL-----` … `-----END LABEL-----` block. */
export interface PemBlock {
  /** The label, e.g. `CERTIFICATE`, `PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`. */
  label: string;
  /** The decoded contents. */
  der: Uint8Array;
  /**
   * The block re-encoded in the canonical form (LF line ends, 64-character lines, a final
   * newline), without any text that surrounded it or RFC 1421 headers.
   */
  text: string;
  /**
   * RFC 1421 headers inside the block (`Proc-Type`, `DEK-Info`), which only legacy
   * OpenSSL-encrypted keys carry. Empty for ordinary blocks.
   */
  headers: Record<string, string>;
}

/** Thrown by {@linkcode splitPem} for a broken block; the message says which line. */
export class PemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PemError";
  }
}

// RFC 7468 §3: a label is printable ASCII without "-", words separated by single spaces or
// hyphens. Real labels are upper-case words, which is all this accepts.
const BEGIN = /^-----BEGIN ([A-Z0-9]+(?:[ -][A-Z0-9]+)*)-----$/;
const END = /^-----END ([A-Z0-9]+(?:[ -][A-Z0-9]+)*)-----$/;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;
const HEADER = /^([A-Za-z0-9-]+):\s*(.*)$/;

/**
 * Splits PEM text into its blocks, in file order. Blocks of every label are returned; callers
 * pick the labels they want.
 *
 * @param text the file contents
 * @returns the blocks; `[]` when the text holds none
 * @throws {PemError} for a BEGIN line without its END, an END that does not match its BEGIN,
 * or contents that are not strict base64
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const blocks = splitPem("comment\r\n-----BEGIN CERTIFICATE-----\r\nAAEC\r\n-----END CERTIFICATE-----\r\n");
 * assert.equal(blocks[0].label, "CERTIFICATE");
 * assert.deepEqual([...blocks[0].der], [0, 1, 2]);
 * ```
 */
export function splitPem(text: string): PemBlock[] {
  const lines = text.split(/\r\n|\r|\n/);
  const blocks: PemBlock[] = [];
  let open:
    | { label: string; line: number; body: string[]; headers: Record<string, string> }
    | null = null;
  let inHeaders = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const lineNo = i + 1;
    if (open === null) {
      const begin = BEGIN.exec(line);
      if (begin) {
        open = { label: begin[1], line: lineNo, body: [], headers: {} };
        inHeaders = true;
      } else if (line.includes("-----BEGIN ") || END.test(line)) {
        throw new PemError(`line ${lineNo} is a broken PEM boundary: "${clip(line)}"`);
      }
      continue;
    }
    const end = END.exec(line);
    if (end) {
      if (end[1] !== open.label) {
        throw new PemError(
          `the "${open.label}" block opened on line ${open.line} is closed by ` +
            `"-----END ${end[1]}-----" on line ${lineNo}`,
        );
      }
      blocks.push(finishBlock(open.label, open.line, open.body, open.headers));
      open = null;
      continue;
    }
    if (line.includes("-----")) {
      throw new PemError(
        `the "${open.label}" block opened on line ${open.line} has no END line ` +
          `(line ${lineNo} starts something else)`,
      );
    }
    if (inHeaders) {
      const header = HEADER.exec(line);
      if (header) {
        open.headers[header[1]] = header[2];
        continue;
      }
      inHeaders = false;
      // RFC 1421 ends the headers with an empty line; nothing else is data-free here.
      if (line === "") continue;
    }
    open.body.push(line);
  }
  if (open !== null) {
    throw new PemError(
      `the "${open.label}" block opened on line ${open.line} has no END line (the text ends first)`,
    );
  }
  return blocks;
}

function finishBlock(
  label: string,
  line: number,
  body: string[],
  headers: Record<string, string>,
): PemBlock {
  const b64 = body.join("").replace(/[ \t]/g, "");
  if (!BASE64_BODY.test(b64) || b64.length % 4 !== 0) {
    throw new PemError(
      `the "${label}" block opened on line ${line} is not valid base64 ` +
        `(a character outside A-Z a-z 0-9 + / =, misplaced padding, or a truncated last line)`,
    );
  }
  let der: Uint8Array;
  try {
    der = Uint8Array.fromBase64(b64, { lastChunkHandling: "strict" });
  } catch {
    throw new PemError(`the "${label}" block opened on line ${line} is not valid base64`);
  }
  if (der.length === 0) {
    throw new PemError(`the "${label}" block opened on line ${line} is empty`);
  }
  return { label, der, text: encodePem(label, der), headers };
}

/**
 * Encodes bytes as one canonical PEM block.
 *
 * @param label e.g. `CERTIFICATE`
 * @param der the bytes to encode
 * @returns `-----BEGIN label-----`, 64-character base64 lines and `-----END label-----`, each
 * ending in LF
 */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = der.toBase64();
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + "\n";
  return out + `-----END ${label}-----\n`;
}

function clip(line: string): string {
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}
