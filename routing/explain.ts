/**
 * `edgemux explain`: which route a connection (and, behind a terminating route, which HTTP
 * route a request) would take, and why, worked out by the same tables the proxy uses.
 *
 * @module
 */

import { assertNever, isTerminating, type ListenerConfig, type Protocol } from "../config/types.ts";
import { HttpRouter, normalizeHost } from "./http_router.ts";
import { normalizePath, type PathNormalization, pathRefusal } from "./path.ts";
import { covers } from "./hosts.ts";
import { RouteTable } from "./route_table.ts";
import { domainToASCII } from "node:url";

/**
 * A server name as the ClientHello parser routes it: a name given in Unicode (`bücher.test`)
 * becomes its A-label (`xn--bcher-kva.test`), as a raw UTF-8 name sent by a client does.
 */
function asciiName(name: string): string {
  if (!/\P{ASCII}/u.test(name)) return name;
  const ascii = domainToASCII(name);
  return ascii === "" ? name : ascii;
}

/** The connection (and request) to explain. */
export interface ExplainQuery {
  protocol: Protocol;
  sni: string | null;
  alpn: string[];
  host: string | null;
  path: string;
  /** The config's `http.path_normalization`; default `strict`. */
  pathNormalization?: PathNormalization;
}

/** Lines of explanation, for a person to read. */
export function explainConnection(listener: ListenerConfig, q: ExplainQuery): string[] {
  const table = new RouteTable(listener);
  const sni = q.sni === null ? null : asciiName(q.sni.toLowerCase().replace(/\.$/, ""));
  const out: string[] = [];
  const what = [
    `${/^[aeiou]|^ssh|^http/.test(q.protocol) ? "an" : "a"} ${q.protocol} connection`,
    q.protocol === "tls" ? (sni ? `with server name "${sni}"` : "without a server name") : "",
    q.alpn.length ? `offering ALPN ${q.alpn.join(", ")}` : "",
  ].filter(Boolean).join(" ");
  out.push(`listener ${listener.name}: ${what}`);
  if (!table.sniff) {
    out.push(
      "  the listener forwards every connection without reading it first (one catch-all route)",
    );
  }
  const decision = table.lookup({ protocol: q.protocol, sni, alpn: q.alpn });
  if (decision === null) {
    out.push(
      q.protocol === "tls"
        ? "  → no route: closed after a TLS unrecognized_name alert"
        : "  → no route: closed",
    );
    return out;
  }
  const route = decision.route;
  out.push(
    `  → route "${route.name}" (routes[${decision.entry.order}], line ${route.position.line}), ` +
      `matched by ${decision.entry.via}`,
  );
  const a = route.action;
  switch (a.kind) {
    case "passthrough":
    case "forward":
      out.push(`  ${a.kind} to backend "${a.backend}"`);
      return out;
    case "reject":
      out.push("  rejected");
      return out;
    case "redirect":
      out.push(`  answered with a ${a.status} redirect to https`);
      return out;
    case "edge":
    case "reencrypt":
      if (a.upstream.kind === "tcp") {
        out.push(`  TLS ends here (${a.kind}); the stream goes to backend "${a.upstream.backend}"`);
        return out;
      }
      break;
    default:
      return assertNever(a, "route action");
  }
  out.push(`  TLS ends here (${a.kind}); requests are routed by host and path`);
  const host = q.host ?? sni;
  if (host === null) {
    out.push("  (give --host to see where a request would go)");
    return out;
  }
  const normalHost = normalizeHost(host);
  const mode = q.pathNormalization ?? "strict";
  const path = normalizePath(q.path, mode);
  if (normalHost === null) {
    out.push(`  a request for ${host}${q.path} is refused with 400 (not a valid host)`);
    return out;
  }
  if (path === null) {
    out.push(
      `  a request for ${host}${q.path} is refused with 400 (its path has ` +
        `${pathRefusal(q.path, mode)}; http.path_normalization is ${mode})`,
    );
    return out;
  }
  if (!covers(route.match.sni, normalHost)) {
    out.push(
      `  a request for host ${normalHost} is answered 421: this route's names do not cover it`,
    );
    return out;
  }
  const router = new HttpRouter(a.upstream.routes);
  const { match, reason } = router.explain(normalHost, path);
  if (match === null) {
    out.push(`  a request for ${normalHost}${path} finds no HTTP route: 404 (${reason})`);
    return out;
  }
  const h = match.route;
  out.push(`  → HTTP route "${h.name}": ${reason}`);
  if (h.action.kind === "redirect") {
    out.push(`  answered with a ${h.action.status} redirect to ${h.action.location}`);
  } else {
    out.push(`  sent to backend "${h.action.backend}" as ${match.upstreamPath}`);
  }
  return out;
}

/**
 * The protocol `edgemux explain` assumes when none is given: the one the listener's routes are
 * written for. A route states it with `protocol:`, or implies it: a server name, ALPN or a
 * passthrough, edge or reencrypt action mean TLS, a redirect to https means plain HTTP. TLS
 * wins when some route expects it (the usual case on port 443); otherwise the first protocol a
 * route names or implies, in route order. A listener whose routes say nothing about protocols
 * (a plain forward) gets `unknown`: it treats every connection alike.
 */
export function inferProtocol(listener: ListenerConfig): Protocol {
  const seen: Protocol[] = [];
  for (const route of listener.routes) {
    const { match, action } = route;
    if (match.protocols !== null) seen.push(...match.protocols);
    else if (
      match.sni !== null || match.alpn !== null || action.kind === "passthrough" ||
      isTerminating(action)
    ) seen.push("tls");
    else if (action.kind === "redirect") seen.push("http");
  }
  if (seen.includes("tls")) return "tls";
  return seen[0] ?? "unknown";
}
