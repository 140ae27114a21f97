/**
 * The request head edgemux sends to a backend: the client's request in origin-form, with
 * hop-by-hop fields removed (RFC 9110 §7.6.1), Host regenerated from the request's authority,
 * and the `X-Forwarded-*` / `Forwarded` (RFC 7239) fields set deliberately.
 *
 * @module
 */

import type { RequestHead } from "./head.ts";
import { encodeLatin1Into, latin1Length } from "./latin1.ts";

/** Who the client is, and whether to believe forwarding fields it sent. */
export interface ForwardingFacts {
  /** The client's IP address as edgemux saw it. */
  clientIp: string;
  /** The scheme the client used to reach edgemux. */
  proto: "http" | "https";
  /**
   * True when the client is a configured trusted proxy: its `X-Forwarded-For` and `Forwarded`
   * chains are kept and extended. Otherwise they are replaced, so a client cannot claim an
   * address it does not have.
   */
  trusted: boolean;
}

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the never-standard Proxy-Connection), dropped in
 * both directions. Transfer-Encoding is not here: edgemux forwards a chunked body unchanged,
 * so the field that describes it goes along.
 */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);

/**
 * Fields a `Connection` header may not remove: dropping them would change how the message is
 * framed or routed, which is what an attacker naming them in `Connection` is after.
 */
const PROTECTED = new Set(["host", "content-length", "transfer-encoding"]);

const FORWARDING = new Set([
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
]);

/** The forwarding fields edgemux writes, given what the request carried. */
export function forwardingFields(
  head: RequestHead,
  facts: ForwardingFacts,
): [string, string][] {
  const host = head.authority ?? "";
  const forNode = facts.clientIp.includes(":") ? `"[${facts.clientIp}]"` : facts.clientIp;
  const mine = `for=${forNode};proto=${facts.proto}${host ? `;host="${host}"` : ""}`;
  if (!facts.trusted) {
    const out: [string, string][] = [
      ["x-forwarded-for", facts.clientIp],
      ["x-forwarded-proto", facts.proto],
    ];
    if (host) out.push(["x-forwarded-host", host]);
    out.push(["forwarded", mine]);
    return out;
  }
  const joined = (name: string) =>
    head.headers.filter(([n]) => n === name).map(([, v]) => v).join(", ");
  const xff = joined("x-forwarded-for");
  const fwd = joined("forwarded");
  const proto = joined("x-forwarded-proto");
  const xhost = joined("x-forwarded-host");
  const out: [string, string][] = [
    ["x-forwarded-for", xff ? `${xff}, ${facts.clientIp}` : facts.clientIp],
    ["x-forwarded-proto", proto || facts.proto],
  ];
  if (xhost || host) out.push(["x-forwarded-host", xhost || host]);
  out.push(["forwarded", fwd ? `${fwd}, ${mine}` : mine]);
  return out;
}

/**
 * Serialises the head to send upstream.
 *
 * @param extra Fields to add after the client's (edgemux's own, such as `connection: close`).
 */
export function upstreamRequestHead(
  head: RequestHead,
  facts: ForwardingFacts,
  extra: [string, string][] = [],
): Uint8Array {
  const named = head.connection.filter((t) => !PROTECTED.has(t));
  const lines: string[] = [`${head.method} ${head.path || "/"} HTTP/1.1`];
  if (head.authority !== null) lines.push(`host: ${head.authority}`);
  for (const [name, value] of head.headers) {
    if (name === "host" || HOP_BY_HOP.has(name) || FORWARDING.has(name)) continue;
    if (named.length > 0 && named.includes(name)) continue;
    lines.push(`${name}: ${value}`);
  }
  for (const [name, value] of forwardingFields(head, facts)) lines.push(`${name}: ${value}`);
  for (const [name, value] of extra) lines.push(`${name}: ${value}`);
  const text = lines.join("\r\n") + "\r\n\r\n";
  const out = new Uint8Array(latin1Length(text));
  encodeLatin1Into(text, out, 0);
  return out;
}
