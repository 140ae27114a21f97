/**
 * Request-path normalisation, done once per request before routing.
 *
 * Why: routes are chosen by comparing the path with prefixes such as `/admin`, but a client can
 * spell one resource many ways: `/public/../admin`, `/public/%2e%2e/admin`, `/%61dmin`. If
 * edgemux compared the spelling while the backend resolved the meaning, such a request would
 * dodge the `/admin` route (and whatever it does: another backend, a redirect, a rejection) and
 * still reach `/admin` on the catch-all backend. So the router only ever sees the normalised
 * path, and the same normalised path is what is sent upstream: edgemux and the backend agree on
 * which resource was asked for.
 *
 * The normalisation is RFC 3986's syntax-based one (§6.2.2), applied to the path only:
 * 1. percent-encoded unreserved characters (ALPHA / DIGIT / "-" / "." / "_" / "~", §2.3) are
 *    decoded, since they mean the same either way (§6.2.2.2);
 * 2. every other percent-encoding keeps its meaning and is kept, with uppercase hex (§6.2.2.1);
 *    in particular `%2F` stays encoded: it is data inside a segment, not a separator;
 * 3. dot-segments are removed (§5.2.4), after decoding, so `%2e%2e` counts as `..`.
 *
 * The query (everything from the first `?`) is passed on byte for byte: its meaning belongs to
 * the backend, and routing never looks at it. Repeated slashes are kept (RFC 3986 gives them no
 * special meaning), and the path's letter case is kept.
 *
 * Refused (null): a target that does not start with `/` (not origin-form), a `%` not followed
 * by two hex digits, and control characters (NUL included) or spaces anywhere. `%00` is refused
 * too, though it is well-formed: a backend that decodes it may cut the path short at the NUL and
 * serve a different resource than the one edgemux routed (`/admin%00/public`).
 *
 * @module
 */

const HEX_UPPER = "0123456789ABCDEF";

/**
 * Normalises an origin-form request target (`/a/b?q`) for routing and forwarding.
 *
 * @param target the request target as received: a path with an optional `?query`
 * @returns the normalised target, or null when it is not a valid origin-form path
 */
export function normalizePath(target: string): string | null {
  const query = target.indexOf("?");
  const end = query < 0 ? target.length : query;
  if (end === 0 || target.charCodeAt(0) !== 0x2f /* / */) return null;

  // One scan validates everything and tells whether the path needs work at all; most request
  // paths are already normal, and those are returned as they are, without a copy.
  let percent = false;
  let dot = false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return null;
    if (i >= end) continue;
    if (c === 0x25 /* % */) {
      if (i + 2 >= end) return null; // the two hex digits must be part of the path
      const hi = hexValue(target.charCodeAt(i + 1));
      const lo = hexValue(target.charCodeAt(i + 2));
      if (hi < 0 || lo < 0 || (hi === 0 && lo === 0)) return null;
      percent = true;
      i += 2;
    } else if (c === 0x2e /* . */ && target.charCodeAt(i - 1) === 0x2f) {
      // Only a segment that starts with "." can be a dot-segment.
      dot = true;
    }
  }
  if (!percent && !dot) return target;

  const path = percent ? decodeUnreserved(target, end) : target.slice(0, end);
  return removeDotSegments(path) + target.slice(end);
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
