/**
 * The heads edgemux writes on behalf of others: the request head sent to a backend and the
 * header list of the response passed back to the client. Hop-by-hop fields are removed both
 * ways (RFC 9110 §7.6.1), framing fields are regenerated rather than copied, Host comes from the
 * request's authority, and `X-Forwarded-*` / `Forwarded` (RFC 7239) are set deliberately.
 *
 * @module
 */

import type { HeaderOps } from "../../../config/types.ts";
import type { BodyFraming } from "./head.ts";
import { encodeLatin1Into } from "./latin1.ts";

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
 * both directions. Content-Length and Transfer-Encoding are dropped too and written afresh
 * from the framing edgemux actually uses.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
  "transfer-encoding",
  "content-length",
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
  // Read by common backends (nginx's real_ip module) as the client's address.
  "x-real-ip",
  "true-client-ip",
]);

/** The fields of a message as edgemux received them: lowercase names, in order. */
export type FieldList = [name: string, value: string][];

/** The forwarding fields edgemux writes, given the request's own fields. */
function forwardingFields(
  headers: FieldList,
  authority: string | null,
  facts: ForwardingFacts,
): FieldList {
  const host = authority ?? "";
  const forNode = facts.clientIp.includes(":") ? `"[${facts.clientIp}]"` : facts.clientIp;
  const mine = `for=${forNode};proto=${facts.proto}${host ? `;host="${host}"` : ""}`;
  if (!facts.trusted) {
    const out: FieldList = [
      ["x-forwarded-for", facts.clientIp],
      ["x-forwarded-proto", facts.proto],
    ];
    if (host) out.push(["x-forwarded-host", host]);
    out.push(["forwarded", mine], ["x-real-ip", facts.clientIp]);
    return out;
  }
  // Every value of a field, joined as one list ("" when absent).
  const joined = (name: string) => {
    let out: string | null = null;
    for (const [n, v] of headers) if (n === name) out = out === null ? v : `${out}, ${v}`;
    return out ?? "";
  };
  const xff = joined("x-forwarded-for");
  const fwd = joined("forwarded");
  const proto = joined("x-forwarded-proto");
  const xhost = joined("x-forwarded-host");
  const out: FieldList = [
    ["x-forwarded-for", xff ? `${xff}, ${facts.clientIp}` : facts.clientIp],
    ["x-forwarded-proto", proto || facts.proto],
  ];
  if (xhost || host) out.push(["x-forwarded-host", xhost || host]);
  out.push(["forwarded", fwd ? `${fwd}, ${mine}` : mine]);
  // A trusted proxy's X-Real-IP names the client it saw; without one, the address is ours.
  out.push(["x-real-ip", joined("x-real-ip") || facts.clientIp]);
  const trueClient = joined("true-client-ip");
  if (trueClient) out.push(["true-client-ip", trueClient]);
  return out;
}

/** No header changes. */
export const NO_HEADER_OPS: HeaderOps = Object.freeze({
  remove: [],
  set: [],
  add: [],
}) as HeaderOps;

/** Applies a route's header changes: remove, then set (replacing), then add. */
export function applyHeaderOps(fields: FieldList, ops: HeaderOps): FieldList {
  if (ops.remove.length === 0 && ops.set.length === 0 && ops.add.length === 0) return fields;
  const drop = new Set([...ops.remove, ...ops.set.map(([n]) => n)]);
  const out = fields.filter(([n]) => !drop.has(n));
  for (const f of ops.set) out.push(f);
  for (const f of ops.add) out.push(f);
  return out;
}

/** The end-to-end fields of a message: hop-by-hop ones and any its `Connection` names removed. */
export function endToEndFields(headers: FieldList, connection: readonly string[]): FieldList {
  const named = removable(connection);
  return headers.filter(([n]) => isEndToEnd(n, named));
}

/** The field names a message's `Connection` tokens remove. */
function removable(connection: readonly string[]): readonly string[] {
  return connection.length === 0 ? connection : connection.filter((t) => !PROTECTED.has(t));
}

/** Whether a field passes a hop (`removed`: from {@link removable}). */
function isEndToEnd(name: string, removed: readonly string[]): boolean {
  return !HOP_BY_HOP.has(name) && (removed.length === 0 || !removed.includes(name));
}

/** What goes into the request head sent upstream. */
export interface UpstreamRequest {
  method: string;
  /** Origin-form path and query. */
  path: string;
  authority: string | null;
  headers: FieldList;
  connection: readonly string[];
  /** How the body is sent upstream (a chunked body is forwarded as chunked). */
  framing: BodyFraming;
  /** An Upgrade value to pass on (WebSocket), or null. */
  upgrade: string | null;
  forwarding: ForwardingFacts;
  ops: HeaderOps;
  /** Ask the backend to close after this exchange. */
  close: boolean;
}

/**
 * Serialises the request head for the backend: into `into` when it fits (the result is then a
 * view of `into`), else into fresh memory.
 */
export function upstreamRequestHead(req: UpstreamRequest, into?: Uint8Array): Uint8Array {
  let text = `${req.method} ${req.path || "/"} HTTP/1.1\r\n`;
  if (req.authority !== null) text += `host: ${req.authority}\r\n`;
  // One copy of the client's fields: the end-to-end ones, less Host and the forwarding fields,
  // which are written afresh after them.
  const named = removable(req.connection);
  const own = req.headers.filter(([n]) =>
    isEndToEnd(n, named) && n !== "host" && !FORWARDING.has(n)
  );
  for (const f of forwardingFields(req.headers, req.authority, req.forwarding)) own.push(f);
  const fields = applyHeaderOps(own, req.ops);
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  if (req.framing.kind === "length") text += `content-length: ${req.framing.length}\r\n`;
  else if (req.framing.kind === "chunked") text += "transfer-encoding: chunked\r\n";
  if (req.upgrade !== null) text += `connection: upgrade\r\nupgrade: ${req.upgrade}\r\n`;
  else if (req.close) text += "connection: close\r\n";
  text += "\r\n";
  return encodeHead(text, into);
}

/**
 * Encodes a head (status line or request line plus fields) given as text: into `into` when it
 * fits (the result is then a view of `into`), else into fresh memory.
 */
export function encodeHead(text: string, into?: Uint8Array): Uint8Array {
  const out = into !== undefined && text.length <= into.length
    ? into.subarray(0, text.length)
    : new Uint8Array(text.length);
  encodeLatin1Into(text, out, 0);
  return out;
}
