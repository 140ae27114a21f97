/**
 * A listener's routes compiled into lookup tables. Pure: no sockets, no clock.
 *
 * Precedence, the same for every lookup and for `edgemux explain`:
 * 1. only routes that take the connection's protocol;
 * 2. for TLS, an exact server name beats a `*.suffix` wildcard, which beats a `**.suffix`
 *    any-depth wildcard, which beats a route without `sni`. A `*.` wildcard stands for exactly
 *    one label, so at most one can match a name; several `**.` suffixes can (`**.example.test`
 *    and `**.b.example.test` both match `a.b.example.test`), and the longest suffix wins;
 * 3. within one of those, a route that names ALPN protocols beats one that does not, and a route
 *    that names its protocol beats `protocol: any`;
 * 4. config order breaks the remaining ties.
 *
 * @module
 */

import type { ListenerConfig, Protocol, RouteConfig } from "../config/types.ts";
import { PROTOCOLS } from "../config/types.ts";
import { formatHostPattern, hasNoEmptyLabel, suffixesOf, wildcardSuffixOf } from "./hosts.ts";

/** What is known about a connection when it is routed. */
export interface ConnectionFacts {
  protocol: Protocol;
  /** The normalised server name from the ClientHello, or null. */
  sni: string | null;
  /** The ALPN protocols the client offered. */
  alpn: readonly string[];
}

/** One way a route can match, placed in one lookup list. */
export interface RouteEntry {
  route: RouteConfig;
  /** The route's position in the listener, for ties and messages. */
  order: number;
  alpn: readonly string[] | null;
  /** The route named this protocol (as opposed to taking any protocol). */
  specific: boolean;
  /** How it matched, for `explain`: `exact "a.b"`, `wildcard "*.b"`, `any name`. */
  via: string;
}

interface ProtocolTable {
  exact: Map<string, RouteEntry[]>;
  /** `*.suffix` routes, by suffix. */
  wildcard: Map<string, RouteEntry[]>;
  /** `**.suffix` routes, by suffix. */
  anyDepth: Map<string, RouteEntry[]>;
  /** The longest suffix in `anyDepth`. */
  anyDepthMax: number;
  any: RouteEntry[];
}

/** The result of a lookup: the route and the entry (why it matched). */
export interface RouteDecision {
  route: RouteConfig;
  entry: RouteEntry;
}

/** A listener's compiled routes. Immutable once built; a reload builds a new one. */
export class RouteTable {
  /** False when every route takes any protocol: the listener forwards without reading first. */
  readonly sniff: boolean;
  readonly #tables: Map<Protocol, ProtocolTable>;

  constructor(listener: ListenerConfig) {
    this.sniff = listener.routes.some((r) => r.match.protocols !== null);
    this.#tables = new Map();
    for (const p of PROTOCOLS) {
      this.#tables.set(p, {
        exact: new Map(),
        wildcard: new Map(),
        anyDepth: new Map(),
        anyDepthMax: 0,
        any: [],
      });
    }
    listener.routes.forEach((route, order) => {
      const protocols = route.match.protocols ?? PROTOCOLS;
      for (const p of protocols) {
        const table = this.#tables.get(p)!;
        const base = {
          route,
          order,
          alpn: route.match.alpn,
          specific: route.match.protocols !== null,
        };
        if (route.match.sni === null) {
          table.any.push({
            ...base,
            via: p !== "tls"
              ? route.match.protocols === null ? `any protocol (${p})` : `protocol ${p}`
              : "any server name",
          });
          continue;
        }
        for (const pattern of route.match.sni) {
          if (pattern.kind === "exact") {
            push(table.exact, pattern.name, { ...base, via: `server name "${pattern.name}"` });
          } else {
            const map = pattern.kind === "wildcard" ? table.wildcard : table.anyDepth;
            push(map, pattern.suffix, { ...base, via: `wildcard "${formatHostPattern(pattern)}"` });
            if (pattern.kind === "anyDepth") {
              table.anyDepthMax = Math.max(table.anyDepthMax, pattern.suffix.length);
            }
          }
        }
      }
    });
    for (const table of this.#tables.values()) {
      for (const list of table.exact.values()) list.sort(byPrecedence);
      for (const list of table.wildcard.values()) list.sort(byPrecedence);
      for (const list of table.anyDepth.values()) list.sort(byPrecedence);
      table.any.sort(byPrecedence);
    }
  }

  /** The route a connection takes, or null when none does. */
  lookup(facts: ConnectionFacts): RouteDecision | null {
    const table = this.#tables.get(facts.protocol)!;
    const sni = facts.sni;
    if (sni !== null) {
      const exact = table.exact.get(sni);
      const hit = exact && firstAlpnMatch(exact, facts.alpn);
      if (hit) return { route: hit.route, entry: hit };
      const suffix = table.wildcard.size > 0 ? wildcardSuffixOf(sni) : null;
      if (suffix !== null) {
        const wild = table.wildcard.get(suffix);
        const w = wild && firstAlpnMatch(wild, facts.alpn);
        if (w) return { route: w.route, entry: w };
      }
      if (table.anyDepth.size > 0 && hasNoEmptyLabel(sni)) {
        for (const suffix of suffixesOf(sni, table.anyDepthMax)) {
          const deep = table.anyDepth.get(suffix);
          const d = deep && firstAlpnMatch(deep, facts.alpn);
          if (d) return { route: d.route, entry: d };
        }
      }
    }
    const any = firstAlpnMatch(table.any, facts.alpn);
    return any ? { route: any.route, entry: any } : null;
  }

  /** Every lookup list, for the config checks that find routes that can never match. */
  *lists(): Generator<{ protocol: Protocol; key: string; entries: RouteEntry[] }> {
    for (const [protocol, table] of this.#tables) {
      for (const [name, entries] of table.exact) yield { protocol, key: `"${name}"`, entries };
      for (const [suffix, entries] of table.wildcard) {
        yield { protocol, key: `"*.${suffix}"`, entries };
      }
      for (const [suffix, entries] of table.anyDepth) {
        yield { protocol, key: `"**.${suffix}"`, entries };
      }
      if (table.any.length > 0) yield { protocol, key: "any server name", entries: table.any };
    }
  }

  /** True when some route takes this protocol at all. */
  accepts(protocol: Protocol): boolean {
    const t = this.#tables.get(protocol)!;
    return t.any.length > 0 || t.exact.size > 0 || t.wildcard.size > 0 || t.anyDepth.size > 0;
  }
}

function push(map: Map<string, RouteEntry[]>, key: string, entry: RouteEntry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

function byPrecedence(a: RouteEntry, b: RouteEntry): number {
  const alpn = Number(b.alpn !== null) - Number(a.alpn !== null);
  if (alpn !== 0) return alpn;
  const specific = Number(b.specific) - Number(a.specific);
  return specific !== 0 ? specific : a.order - b.order;
}

function firstAlpnMatch(list: RouteEntry[], offered: readonly string[]): RouteEntry | undefined {
  for (const entry of list) {
    if (entry.alpn === null) return entry;
    for (const p of entry.alpn) if (offered.includes(p)) return entry;
  }
  return undefined;
}
