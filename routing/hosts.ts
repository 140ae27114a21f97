/**
 * Host names against host patterns: the one place the wildcard rules are written. Route tables
 * (route_table.ts), HTTP routers (http_router.ts), the certificate store
 * (proxy/tls/certs/store.ts) and the config checks all match names through these.
 *
 * The rules, for names already normalised (lowercase, no trailing dot):
 * - `*.suffix` covers exactly one more non-empty label: `a.suffix`, never `suffix` itself nor
 *   `a.b.suffix` (RFC 6125 §6.4.3, as browsers match certificate names);
 * - `**.suffix` covers one or more non-empty labels (nginx's `.suffix` without the bare name);
 * - a name with an empty label (`.a.b`, `a..b`, `a.b.`) matches no wildcard.
 *
 * @module
 */

import { assertNever, type HostPattern } from "../config/types.ts";

/**
 * The suffix a `*.suffix` wildcard must have to cover `name`: everything after its first label;
 * null when the first label is empty or there is no dot. Lookups keyed by wildcard suffix use
 * this; {@link wildcardCovers} is the same rule without the slice.
 */
export function wildcardSuffixOf(name: string): string | null {
  const dot = name.indexOf(".");
  return dot > 0 ? name.slice(dot + 1) : null;
}

/** Whether `*.suffix` covers `name` (see {@link wildcardSuffixOf}). */
export function wildcardCovers(suffix: string, name: string): boolean {
  const dot = name.indexOf(".");
  return dot > 0 && name.length - dot - 1 === suffix.length && name.endsWith(suffix);
}

/**
 * The suffix of a certificate name that is a wildcard (`*.example.test` → `example.test`); null
 * for any other name. Only a whole leftmost `*` label is a wildcard (RFC 6125 §6.4.3).
 */
export function certWildcardSuffix(certName: string): string | null {
  return certName.startsWith("*.") ? certName.slice(2) : null;
}

/** Whether a certificate name (`a.b`, or `*.b` for one more label) covers `name`. */
export function certNameCovers(certName: string, name: string): boolean {
  const suffix = certWildcardSuffix(certName);
  return suffix === null ? certName === name : wildcardCovers(suffix, name);
}

/** Whether `**.suffix` covers `name`: one or more non-empty labels, a dot, then the suffix. */
export function anyDepthCovers(suffix: string, name: string): boolean {
  return name.length > suffix.length + 1 && name.endsWith(suffix) &&
    name.charCodeAt(name.length - suffix.length - 1) === 0x2e /* . */ &&
    hasNoEmptyLabel(name);
}

/** True when a TLS route's server names cover `host` (a route without `sni` covers any). */
export function covers(patterns: readonly HostPattern[] | null, host: string): boolean {
  if (patterns === null) return true;
  for (const p of patterns) if (patternMatches(p, host)) return true;
  return false;
}

/**
 * Whether a host pattern matches a (normalised) name, by the rules above; the route tables and
 * HTTP routers implement the same with maps keyed by {@link wildcardSuffixOf} and
 * {@link suffixesOf}.
 */
export function patternMatches(p: HostPattern, host: string): boolean {
  switch (p.kind) {
    case "exact":
      return p.name === host;
    case "wildcard":
      return wildcardCovers(p.suffix, host);
    case "anyDepth":
      return anyDepthCovers(p.suffix, host);
    default:
      return assertNever(p, "host pattern");
  }
}

/** False for `.a.b`, `a..b` and `a.b.`: names with an empty label match no wildcard. */
export function hasNoEmptyLabel(host: string): boolean {
  return host.length > 0 && host.charCodeAt(0) !== 0x2e &&
    host.charCodeAt(host.length - 1) !== 0x2e &&
    !host.includes("..");
}

/** A pattern as it is written in the config: `a.b`, `*.b`, `**.b`. */
export function formatHostPattern(p: HostPattern): string {
  return p.kind === "exact" ? p.name : `${p.kind === "wildcard" ? "*" : "**"}.${p.suffix}`;
}

/**
 * The suffixes an any-depth wildcard could stand for in `host`, longest first, and none longer
 * than `maxLength` (the longest `**.` suffix configured): `a.b.example.test` →
 * `b.example.test`, `example.test`, `test`. Bounding the length keeps a lookup's cost set by the
 * config, not by how long a name a client sends; callers check `hasNoEmptyLabel` first.
 */
export function* suffixesOf(host: string, maxLength: number): Generator<string> {
  const from = Math.max(1, host.length - maxLength - 1);
  for (let dot = host.indexOf(".", from); dot > 0; dot = host.indexOf(".", dot + 1)) {
    yield host.slice(dot + 1);
  }
}
