/**
 * The HTTP routes of one terminated (`edge` or `reencrypt`) route, compiled into lookup tables.
 * Pure: no sockets, no clock. Built once per config; a reload builds a new one.
 *
 * Precedence, the same for every lookup and for `edgemux explain`:
 * 1. host specificity first: an exact host beats a `*.suffix` wildcard (which stands for exactly
 *    one extra label, so at most one wildcard can match a host), which beats a `**.suffix`
 *    any-depth wildcard (one or more labels; of several that match, the longest suffix first),
 *    which beats routes without `host`;
 * 2. then, within the same host tier, path specificity: an exact path beats any prefix, a longer
 *    prefix beats a shorter one, and a route without `path` comes last;
 * 3. config order breaks the remaining ties.
 *
 * A request whose host has exact routes, none of which takes its path, falls through to the
 * wildcard tier and then to the routes without `host`: the order above ranks every route that
 * matches, and the best one wins.
 *
 * Paths are compared byte for byte, so callers pass the path through `normalizePath` first
 * (see path.ts for why). Hosts are compared after `normalizeHost`, which `match` applies itself.
 *
 * @module
 */

import type { HttpRouteConfig, PathMatch } from "../config/types.ts";
import { formatHostPattern, hasNoEmptyLabel, suffixesOf, wildcardSuffixOf } from "./hosts.ts";

/** The route a request takes and the path it is forwarded with. */
export interface HttpRouteMatch {
  route: HttpRouteConfig;
  /** The path to send upstream (after strip/rewrite), with the original query appended. */
  upstreamPath: string;
}

/** One way a route can match, placed in one host tier's list. */
interface Entry {
  route: HttpRouteConfig;
  /** The route's position in the config, for ties. */
  order: number;
  path: PathMatch | null;
  /** The prefix's length without a trailing "/", so a match is followed by "/", "?" or the end. */
  base: number;
  /** What replaces the matched prefix upstream (strip is "/"); null to forward the path as is. */
  rewrite: string | null;
  /** `rewrite` without its trailing "/", for joining to the rest of the path. */
  rewriteJoin: string;
  /** Which host list it is in. */
  tier: typeof EXACT | typeof WILDCARD | typeof ANY_DEPTH | typeof ANY;
  /** The name or suffix it is filed under ("" for any host). */
  key: string;
  /** For `explain`: `exact "a.b"`, `wildcard "*.b"`, `any host`. */
  via: string;
}

/** The host tiers, most specific first; also their index in `#tiersFor`. */
const EXACT = 0;
const WILDCARD = 1;
const ANY_DEPTH = 2;
const ANY = 3;

/**
 * Normalises a request's authority (Host header or `:authority`) to the form route hosts are
 * written in: the port removed, lowercase, one trailing dot dropped. An IPv6 literal keeps its
 * brackets (`[::1]:8443` → `[::1]`). A port must name a TCP port: 1-65535 in decimal digits
 * without a leading zero (RFC 3986 §3.2.3 allows any digits, but port 0, `0443` or `65536`
 * reach no server, and a backend could read them differently); otherwise there is no host.
 *
 * @param authority `host`, `host:port`, `[v6]` or `[v6]:port`, in any case
 * @returns the host, or null when there is none or the port is not a TCP port
 */
export function normalizeHost(authority: string): string | null {
  let host: string;
  let port: string | null = null;
  if (authority.charCodeAt(0) === 0x5b /* [ */) {
    const close = authority.indexOf("]");
    host = close < 0 ? authority : authority.slice(0, close + 1);
    if (close >= 0 && close + 1 < authority.length) {
      // Only a port may follow the bracket.
      if (authority.charCodeAt(close + 1) !== 0x3a /* : */) return null;
      port = authority.slice(close + 2);
    }
  } else {
    const colon = authority.indexOf(":");
    // An unbracketed name with two colons is no valid authority (perhaps a bare IPv6 address);
    // there is no telling where a port would start, so it is kept whole and matches no name.
    if (colon < 0 || authority.indexOf(":", colon + 1) >= 0) host = authority;
    else {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
    if (host.endsWith(".")) host = host.slice(0, -1);
  }
  if (port !== null && !isTcpPort(port)) return null;
  return host.length === 0 ? null : host.toLowerCase();
}

/** `1`-`65535` in decimal, no sign, no leading zero. */
function isTcpPort(port: string): boolean {
  if (port.length === 0 || port.length > 5 || port.charCodeAt(0) === 0x30 /* 0 */) return false;
  let v = 0;
  for (let i = 0; i < port.length; i++) {
    const d = port.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
    v = v * 10 + d;
  }
  return v <= 65535;
}

/** A set of HTTP routes compiled for lookup. Immutable once built; lookups only read. */
export class HttpRouter {
  readonly #exact = new Map<string, Entry[]>();
  readonly #wildcard = new Map<string, Entry[]>();
  readonly #anyDepth = new Map<string, Entry[]>();
  /** The longest suffix in `#anyDepth`. */
  #anyDepthMax = 0;
  readonly #any: Entry[] = [];

  constructor(routes: readonly HttpRouteConfig[]) {
    routes.forEach((route, order) => {
      const rewrite = route.path?.kind === "prefix"
        ? route.rewritePrefix ?? (route.stripPrefix ? "/" : null)
        : null;
      const base = {
        route,
        order,
        path: route.path,
        base: prefixBase(route.path),
        rewrite,
        rewriteJoin: rewrite?.endsWith("/") ? rewrite.slice(0, -1) : rewrite ?? "",
      };
      if (route.hosts === null) {
        this.#any.push({ ...base, tier: ANY, key: "", via: "any host" });
        return;
      }
      for (const pattern of route.hosts) {
        if (pattern.kind === "exact") {
          push(this.#exact, pattern.name, {
            ...base,
            tier: EXACT,
            key: pattern.name,
            via: `exact "${pattern.name}"`,
          });
        } else {
          const wildcard = pattern.kind === "wildcard";
          if (!wildcard) this.#anyDepthMax = Math.max(this.#anyDepthMax, pattern.suffix.length);
          push(wildcard ? this.#wildcard : this.#anyDepth, pattern.suffix, {
            ...base,
            tier: wildcard ? WILDCARD : ANY_DEPTH,
            key: pattern.suffix,
            via: `wildcard "${formatHostPattern(pattern)}"`,
          });
        }
      }
    });
    for (const list of this.#exact.values()) list.sort(byPathSpecificity);
    for (const list of this.#wildcard.values()) list.sort(byPathSpecificity);
    for (const list of this.#anyDepth.values()) list.sort(byPathSpecificity);
    this.#any.sort(byPathSpecificity);
  }

  /**
   * The route a request takes, or null when none does.
   *
   * @param host the request's authority as received (port, case and trailing dot allowed)
   * @param path the request path with its optional `?query`, already passed through
   *   `normalizePath`
   */
  match(host: string | null, path: string): HttpRouteMatch | null {
    const end = queryStart(path);
    const entry = this.#lookup(host === null ? null : normalizeHost(host), path, end);
    return entry === undefined
      ? null
      : { route: entry.route, upstreamPath: upstream(entry, path, end) };
  }

  /**
   * The same lookup as `match`, with a phrase saying why, for `edgemux explain`, such as
   * `host "a.example.test" exact, path prefix "/api" (longest of 2)`.
   *
   * @param host the request's authority as received
   * @param path the normalised request path with its optional `?query`
   */
  explain(host: string | null, path: string): { match: HttpRouteMatch | null; reason: string } {
    const name = host === null ? null : normalizeHost(host);
    const end = queryStart(path);
    const entry = this.#lookup(name, path, end);
    const tiers = this.#tiersFor(name);
    const shownHost = name === null ? "no host" : `host "${name}"`;
    if (entry === undefined) {
      const candidates = tiers.reduce((n, t) => n + t.length, 0);
      const why = candidates === 0
        ? "no route takes this host"
        : candidates === 1
        ? "the one route for this host takes other paths"
        : `none of the ${candidates} routes for this host takes this path`;
      return { match: null, reason: `${shownHost}, path "${path.slice(0, end)}": ${why}` };
    }
    const rivals = tiers[entry.tier].filter((e) =>
      e.key === entry.key && matchesPath(e, path, end)
    );
    const skipped = tiers.slice(0, entry.tier).reduce((n, t) => n + t.length, 0);
    let hostPart: string;
    if (entry.tier === EXACT) hostPart = `${shownHost} exact`;
    else if (entry.tier === WILDCARD || entry.tier === ANY_DEPTH) {
      hostPart = `${shownHost} ${entry.via}`;
    } else hostPart = name === null ? shownHost : `${shownHost} by a route without host`;
    if (skipped > 0) {
      hostPart += skipped === 1
        ? " (1 more specific route for it takes other paths)"
        : ` (${skipped} more specific routes for it take other paths)`;
    }
    let pathPart: string;
    const p = entry.path;
    if (p === null) pathPart = "any path";
    else if (p.kind === "exact") pathPart = `path exact "${p.value}"`;
    else {
      const prefixes = rivals.filter((e) => e.path?.kind === "prefix").length;
      pathPart = `path prefix "${p.value}"` + (prefixes > 1 ? ` (longest of ${prefixes})` : "");
    }
    const ties = rivals.filter((e) => sameSpecificity(e, entry)).length;
    const order = ties > 1 ? `, first in config order of ${ties}` : "";
    const match = { route: entry.route, upstreamPath: upstream(entry, path, end) };
    return { match, reason: `${hostPart}, ${pathPart}${order}` };
  }

  #lookup(host: string | null, path: string, end: number): Entry | undefined {
    if (host !== null) {
      const exact = this.#exact.get(host);
      const hit = exact && firstPathMatch(exact, path, end);
      if (hit) return hit;
      // Skip the slice below when no route has a wildcard, the common case.
      if (this.#wildcard.size > 0) {
        const suffix = wildcardSuffixOf(host);
        if (suffix !== null) {
          const wild = this.#wildcard.get(suffix);
          const w = wild && firstPathMatch(wild, path, end);
          if (w) return w;
        }
      }
      if (this.#anyDepth.size > 0 && hasNoEmptyLabel(host)) {
        for (const suffix of suffixesOf(host, this.#anyDepthMax)) {
          const deep = this.#anyDepth.get(suffix);
          const d = deep && firstPathMatch(deep, path, end);
          if (d) return d;
        }
      }
    }
    return firstPathMatch(this.#any, path, end);
  }

  /** The lists a host is looked up in, indexed by tier (EXACT, WILDCARD, ANY_DEPTH, ANY). */
  #tiersFor(host: string | null): Entry[][] {
    if (host === null) return [[], [], [], this.#any];
    const suffix = wildcardSuffixOf(host);
    const wild = suffix !== null ? this.#wildcard.get(suffix) : undefined;
    const deep: Entry[] = [];
    if (this.#anyDepth.size > 0 && hasNoEmptyLabel(host)) {
      for (const suffix of suffixesOf(host, this.#anyDepthMax)) {
        deep.push(...(this.#anyDepth.get(suffix) ?? []));
      }
    }
    return [this.#exact.get(host) ?? [], wild ?? [], deep, this.#any];
  }
}

function push(map: Map<string, Entry[]>, key: string, entry: Entry): void {
  const list = map.get(key);
  if (!list) map.set(key, [entry]);
  // A route naming one host twice is filed once (its entries are pushed one after another).
  else if (list[list.length - 1].route !== entry.route) list.push(entry);
}

/** 0 for an exact path, 1 for a prefix, 2 for no path. */
function pathRank(p: PathMatch | null): number {
  return p === null ? 2 : p.kind === "exact" ? 0 : 1;
}

function byPathSpecificity(a: Entry, b: Entry): number {
  const rank = pathRank(a.path) - pathRank(b.path);
  if (rank !== 0) return rank;
  if (a.path?.kind === "prefix" && b.path?.kind === "prefix") {
    const longer = b.path.value.length - a.path.value.length;
    if (longer !== 0) return longer;
  }
  return a.order - b.order;
}

function sameSpecificity(a: Entry, b: Entry): boolean {
  if (pathRank(a.path) !== pathRank(b.path)) return false;
  return a.path?.kind !== "prefix" || a.path.value.length === b.path!.value.length;
}

function prefixBase(p: PathMatch | null): number {
  if (p === null || p.kind !== "prefix") return 0;
  return p.value.endsWith("/") ? p.value.length - 1 : p.value.length;
}

function firstPathMatch(list: Entry[], path: string, end: number): Entry | undefined {
  for (const entry of list) if (matchesPath(entry, path, end)) return entry;
  return undefined;
}

/** Where the query starts, or the path's length when it has none. */
function queryStart(path: string): number {
  const q = path.indexOf("?");
  return q < 0 ? path.length : q;
}

/**
 * The PathMatch rules of config/types.ts, without slicing the query off: `end` is where the
 * path stops, and a match may not reach past it (so a value can never match into the query).
 */
function matchesPath(entry: Entry, path: string, end: number): boolean {
  const p = entry.path;
  if (p === null) return true;
  const v = p.value;
  if (p.kind === "exact") return end === v.length && path.startsWith(v);
  if (v.length > end || !path.startsWith(v)) return false;
  // At a segment boundary: the prefix ends in "/", or the path ends or continues with "/" there.
  return entry.base < v.length || v.length === end || path.charCodeAt(v.length) === 0x2f;
}

/**
 * The path sent upstream. Stripping is rewriting to "/". The matched part is the prefix without
 * its trailing "/", so the rest is "" or starts with "/"; joining it to the replacement without
 * that replacement's trailing "/" never doubles or drops a slash:
 * `/api/x` → `/v2/x`, `/api/` → `/v2/`, `/api` → `/v2` (or `/v2/` when that is the replacement).
 */
function upstream(entry: Entry, path: string, end: number): string {
  if (entry.rewrite === null) return path;
  const rest = path.slice(entry.base, end);
  const rewritten = rest === "" ? entry.rewrite : entry.rewriteJoin + rest;
  return (rewritten === "" ? "/" : rewritten) + path.slice(end);
}
