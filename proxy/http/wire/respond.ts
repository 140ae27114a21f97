/**
 * Short responses that edgemux writes itself (redirects and errors): a status line, a few
 * headers and a one-line body that never carries internal detail.
 *
 * @module
 */

/** Reason phrases for the statuses edgemux sends on its own. */
export const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  301: "Moved Permanently",
  302: "Found",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  404: "Not Found",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** Options for {@link simpleResponse}. */
export interface SimpleResponseOptions {
  /** Extra header lines as name/value pairs (values must already be safe: no CR or LF). */
  headers?: [string, string][];
  /** The body text; defaults to the reason phrase. */
  body?: string;
  /** Add `connection: close`. */
  close?: boolean;
  /** A response to HEAD: headers only, with the length the body would have had. */
  head?: boolean;
}

const encoder = new TextEncoder();

/** The head of a {@link simpleResponse} whose body is `length` bytes. */
function headText(
  status: number,
  reason: string,
  opts: SimpleResponseOptions,
  length: number,
): string {
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of opts.headers ?? []) head += `${name}: ${value}\r\n`;
  head += `content-type: text/plain; charset=utf-8\r\ncontent-length: ${length}\r\n`;
  if (opts.close) head += "connection: close\r\n";
  return head + "\r\n";
}

/** Builds a complete HTTP/1.1 response with a plain-text body. */
export function simpleResponse(status: number, opts: SimpleResponseOptions = {}): Uint8Array {
  const reason = STATUS_TEXT[status] ?? "Unknown";
  const body = encoder.encode(opts.body ?? `${reason}\n`);
  const headBytes = encoder.encode(headText(status, reason, opts, body.length));
  if (opts.head) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes, 0);
  out.set(body, headBytes.length);
  return out;
}

/**
 * {@link simpleResponse} written into `scratch` instead of fresh memory: the hot path of a
 * redirect listener answers every request without allocating a buffer. Returns the filled
 * part of `scratch`, or a freshly allocated response when it does not fit. The caller must not
 * reuse `scratch` until the returned bytes are written.
 */
export function simpleResponseInto(
  scratch: Uint8Array,
  status: number,
  opts: SimpleResponseOptions = {},
): Uint8Array {
  const reason = STATUS_TEXT[status] ?? "Unknown";
  // The body goes to the back half first, so its length in bytes is known for the head.
  const half = scratch.length >> 1;
  const bodyText = opts.body ?? `${reason}\n`;
  const body = encoder.encodeInto(bodyText, scratch.subarray(half));
  if (body.read < bodyText.length) return simpleResponse(status, opts);
  const head = headText(status, reason, opts, body.written);
  const written = encoder.encodeInto(head, scratch.subarray(0, half));
  if (written.read < head.length) return simpleResponse(status, opts);
  if (opts.head) return scratch.subarray(0, written.written);
  scratch.copyWithin(written.written, half, half + body.written);
  return scratch.subarray(0, written.written + body.written);
}
