/**
 * Request-path normalisation, done once per request before routing.
 *
 * Why: routes are chosen by comparing the path with prefixes such as `/admin`, but a client can
 * spell one resource many ways: `/public/../admin`, `/public/%2e%2e/admin`, `/%61dmin`, `//admin`,
 * `/admin%2Fx`. If edgemux compared the spelling while the backend resolved the meaning, such a
 * request would dodge the `/admin` route (and whatever it does: another backend, a redirect, a
 * rejection) and still reach `/admin` on the catch-all backend. So the router only ever sees the
 * normalised path, and the same normalised path is what is sent upstream: edgemux and the
 * backend agree on which resource was asked for. docs/paths.md has the reasoning and the
 * evidence (tests/path_differential_test.ts runs a corpus through edgemux to a real nginx).
 *
 * Two modes (`http.path_normalization`). Both start with RFC 3986's syntax-based normalisation
 * (§6.2.2), applied to the path only:
 * 1. percent-encoded unreserved characters (ALPHA / DIGIT / "-" / "." / "_" / "~", §2.3) are
 *    decoded, since they mean the same either way (§6.2.2.2);
 * 2. every other percent-encoding keeps its meaning and is kept, with uppercase hex (§6.2.2.1);
 * 3. dot-segments are removed (§5.2.4), after decoding, so `%2e%2e` counts as `..`.
 *
 * `strict` (the default) goes on to read the path the way the common backends do (nginx and
 * Apache merge slashes by default, Go's ServeMux redirects to the `path.Clean` form), and refuses
 * what they read differently from each other (nginx decodes `%2F` into a separator, Apache
 * answers it with 404, Go hands handlers a decoded path; the WHATWG URL parser takes `\` for `/`,
 * nginx on Linux does not):
 * 4. repeated slashes are merged into one, before dot-segments are removed;
 * 5. a path that one backend would split differently from another is refused rather than guessed
 *    at: `%2F` and `%5C` (encoded separators), a raw `\`, encoded control characters
 *    (`%01`–`%1F`, `%7F`), and a segment that a servlet container reads as a dot-segment with
 *    parameters (`..;x`, `.;x`).
 *
 * `pass` stops after step 3: repeated slashes, `%2F`, `%5C`, `\`, encoded control characters
 * and `..;` segments go to the backend as they came, for backends that give them a meaning of
 * their own (and accept that a decoding backend may then serve `/admin%2Fx` as `/admin/x`).
 *
 * The query (everything from the first `?`) is passed on byte for byte: its meaning belongs to
 * the backend, and routing never looks at it. The path's letter case is kept.
 *
 * Refused in both modes: a target that does not start with `/` (not origin-form), a `%` not
 * followed by two hex digits, a `#` (a fragment is never part of a request target, RFC 9112
 * §3.2), and control characters, spaces or bytes above 0x7E anywhere. `%00` is refused too,
 * though it is well-formed: a backend that decodes it may cut the path short at the NUL and
 * serve a different resource than the one edgemux routed (`/admin%00/public`).
 *
 * @module
 */

/** How request paths are normalised; see the module comment. */
export type PathNormalization = "strict" | "pass";

/** Every mode, for the config parser. */
export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ["strict", "pass"];

const HEX_UPPER = "0123456789ABCDEF";

/** Why a target was refused; `REASONS[code - 1]` says it in words for the request log. */
const NOT_ORIGIN = 1;
const BAD_ESCAPE = 2;
const BAD_BYTE = 3;
const FRAGMENT = 4;
const ENCODED_NUL = 5;
const ENCODED_SLASH = 6;
const ENCODED_BACKSLASH = 7;
const BACKSLASH = 8;
const ENCODED_CONTROL = 9;
const DOT_PARAMS = 10;
const REASONS = [
  "not an origin-form path",
  "a % not followed by two hex digits",
  "a control character, space or non-ASCII byte",
  "a fragment (#)",
  "an encoded NUL (%00)",
  "an encoded slash (%2F)",
  "an encoded backslash (%5C)",
  "a backslash",
  "an encoded control character",
  "a dot-segment with parameters (..;)",
];

/**
 * Normalises an origin-form request target (`/a/b?q`) for routing and forwarding.
 *
 * @param target the request target as received: a path with an optional `?query`
 * @param mode `strict` (the default) or `pass`; see the module comment
 * @returns the normalised target, or null when it is refused (the request gets `400`)
 */
export function normalizePath(target: string, mode: PathNormalization = "strict"): string | null {
  const strict = mode === "strict";
  const query = target.indexOf("?");
  const end = query < 0 ? target.length : query;
  if (end === 0 || target.charCodeAt(0) !== 0x2f /* / */) return refuse(NOT_ORIGIN);

  // One scan validates everything and tells whether the path needs work at all; most request
  // paths are already normal, and those are returned as they are, without a copy.
  let percent = false;
  let dot = false;
  let slashes = false;
  let semicolon = false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    // Everything from "0" to "~" but ";" and "\\" needs no more look: nearly every character.
    if (c > 0x2f && c < 0x7f && c !== 0x3b && c !== 0x5c) continue;
    if (c <= 0x20 || c >= 0x7f) return refuse(BAD_BYTE);
    if (c === 0x23 /* # */) return refuse(FRAGMENT);
    if (i >= end) continue;
    if (c === 0x25 /* % */) {
      if (i + 2 >= end) return refuse(BAD_ESCAPE); // the two hex digits must be part of the path
      const hi = hexValue(target.charCodeAt(i + 1));
      const lo = hexValue(target.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return refuse(BAD_ESCAPE);
      const byte = hi * 16 + lo;
      if (byte === 0) return refuse(ENCODED_NUL);
      if (strict) {
        if (byte === 0x2f) return refuse(ENCODED_SLASH);
        if (byte === 0x5c) return refuse(ENCODED_BACKSLASH);
        if (byte < 0x20 || byte === 0x7f) return refuse(ENCODED_CONTROL);
      }
      percent = true;
      i += 2;
    } else if (c === 0x2e /* . */) {
      // Only a segment that starts with "." can be a dot-segment; "%2E" counts once decoded,
      // which the percent branch covers.
      if (target.charCodeAt(i - 1) === 0x2f) dot = true;
    } else if (c === 0x2f /* / */) {
      if (target.charCodeAt(i + 1) === 0x2f && i + 1 < end) slashes = true;
    } else if (c === 0x5c /* \\ */) {
      if (strict) return refuse(BACKSLASH);
    } else if (c === 0x3b /* ; */) {
      semicolon = true;
    }
  }
  // Without a "/." there is no dot-segment, with parameters or without.
  if (!percent && !dot && !(strict && slashes)) return target;

  let path = percent ? decodeUnreserved(target, end) : target.slice(0, end);
  if (strict && path.includes("//")) path = path.replace(/\/{2,}/g, "/");
  path = removeDotSegments(path);
  if (strict && semicolon && hasDotParams(path)) return refuse(DOT_PARAMS);
  return path + target.slice(end);
}

/**
 * Why `normalizePath(target, mode)` refuses a target, in words for the request log (such as
 * "an encoded slash (%2F)"), or null when it does not.
 */
export function pathRefusal(target: string, mode: PathNormalization = "strict"): string | null {
  return normalizePath(target, mode) === null ? REASONS[lastRefusal - 1] : null;
}

/** The reason of the last refusal; normalizePath returns null, its callers rarely ask why. */
let lastRefusal = 0;

function refuse(reason: number): null {
  lastRefusal = reason;
  return null;
}

/**
 * Whether a segment of `path` is "." or ".." followed by ";": Tomcat and Jetty drop a
 * segment's `;parameters` before resolving dot-segments, so to them `/public/..;/admin` is
 * `/admin`, while every other reader sees a segment named "..;".
 */
function hasDotParams(path: string): boolean {
  return path.includes("/.;") || path.includes("/..;");
}

/** The path `target[0, end)` with unreserved characters decoded and other hex uppercased. */
function decodeUnreserved(target: string, end: number): string {
  let out = "";
  let from = 0;
  for (let i = target.indexOf("%"); i >= 0 && i < end; i = target.indexOf("%", i + 3)) {
    const hi = hexValue(target.charCodeAt(i + 1));
    const lo = hexValue(target.charCodeAt(i + 2));
    const byte = hi * 16 + lo;
    out += target.slice(from, i);
    out += isUnreserved(byte) ? String.fromCharCode(byte) : "%" + HEX_UPPER[hi] + HEX_UPPER[lo];
    from = i + 3;
  }
  return out + target.slice(from, end);
}

/**
 * RFC 3986 §5.2.4 for an absolute path (it starts with "/"). Segment by segment rather than the
 * RFC's buffer-rewriting loop; the result is the same: "." is dropped, ".." drops the segment
 * before it (never above the root), and a path ending in a dot-segment ends in "/".
 */
function removeDotSegments(path: string): string {
  if (!path.includes("/.")) return path;
  const segments = path.split("/"); // segments[0] is the "" before the leading "/"
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i];
    const last = i === segments.length - 1;
    if (s === ".") {
      trailingSlash = last;
    } else if (s === "..") {
      out.pop();
      trailingSlash = last;
    } else {
      out.push(s);
    }
  }
  const joined = "/" + out.join("/");
  return trailingSlash && out.length > 0 ? joined + "/" : joined;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1; // also for NaN, past the end of the string
}

/** ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3). */
function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) ||
    b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
}
