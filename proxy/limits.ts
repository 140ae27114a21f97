/**
 * Connection caps checked at accept: over all listeners, per listener, per client address
 * (concurrent connections), and a per-client new-connection rate (a token bucket). A connection
 * over a cap is closed at once: nothing is queued.
 *
 * A client is its IPv4 address, or its IPv6 /64: one IPv6 host is routinely given a whole /64
 * (RFC 6177 and SLAAC make it the smallest prefix a site gets), so counting single IPv6
 * addresses would let one attacker use a fresh address for every connection.
 *
 * The counters outlive reloads (they describe connections that are open now); a reload only
 * changes the caps.
 *
 * @module
 */

import type { LimitsConfig } from "../config/types.ts";
import { parseIp } from "../routing/cidr.ts";
import type { Backend } from "./backends/backend.ts";
import type { OpenAccessRecord } from "./observe/records.ts";
import type { PeerAddress } from "./net.ts";

/**
 * The key per-client limits count under: an IPv4 address as it is, an IPv6 address as its /64
 * (`2001:db8:0:7::/64`). IPv4-mapped addresses arrive as IPv4 already (net.ts `peerAddress`).
 */
export function clientKey(ip: string): string {
  if (!ip.includes(":")) return ip;
  const bytes = parseIp(ip);
  if (bytes === null || bytes.length !== 16) return ip;
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return `${groups.join(":")}::/64`;
}

/**
 * Counts the connection against the backend's `max_connections_per_client`; null (with the
 * record saying why) when the client is at the cap, and the connection is closed unanswered.
 */
export function admitToBackend(
  backend: Backend,
  client: PeerAddress,
  record: OpenAccessRecord,
): (() => void) | null {
  const key = clientKey(client.ip);
  const leave = backend.admitClient(key);
  if (leave !== null) return leave;
  record.end = "limit-backend-client";
  record.detail = `${backend.clientConnections(key)} connections from ${key} to backend ` +
    `"${backend.name}" already (max_connections_per_client)`;
  return null;
}

/** Why a connection was refused, as logged. */
export type LimitRefusal = "limit-total" | "limit-listener" | "limit-client" | "rate-limited";

interface Bucket {
  tokens: number;
  updated: number;
}

/** Counts open connections and decides whether a new one may start. */
export class ConnectionLimiter {
  #limits: LimitsConfig;
  #total = 0;
  readonly #perListener = new Map<string, number>();
  readonly #perClient = new Map<string, number>();
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;

  constructor(limits: LimitsConfig) {
    this.#limits = limits;
  }

  /** Applies the caps of a reloaded config. */
  update(limits: LimitsConfig): void {
    this.#limits = limits;
  }

  /** Connections open now. */
  get total(): number {
    return this.#total;
  }

  /** Connections open now on one listener. */
  inListener(listener: string): number {
    return this.#perListener.get(listener) ?? 0;
  }

  /**
   * Admits a connection, or says which cap refuses it. An admitted connection must call the
   * returned `release` exactly once when it ends.
   */
  admit(
    listener: string,
    listenerMax: number | null,
    clientIp: string,
    now = Date.now(),
  ): (() => void) | LimitRefusal {
    const l = this.#limits;
    if (this.#total >= l.maxConnections) return "limit-total";
    const inListener = this.#perListener.get(listener) ?? 0;
    if (listenerMax !== null && inListener >= listenerMax) return "limit-listener";
    const leaveClient = this.admitClient(clientIp, now);
    if (typeof leaveClient === "string") return leaveClient;
    const leaveShared = this.admitShared(listener, listenerMax);
    return () => {
      (leaveShared as () => void)();
      leaveClient();
    };
  }

  /**
   * The caps over all listeners and per listener alone, for a connection whose client is not
   * known yet (a PROXY header will name it): the caller then asks {@link admitClient}.
   */
  admitShared(listener: string, listenerMax: number | null): (() => void) | LimitRefusal {
    if (this.#total >= this.#limits.maxConnections) return "limit-total";
    const inListener = this.#perListener.get(listener) ?? 0;
    if (listenerMax !== null && inListener >= listenerMax) return "limit-listener";
    this.#total++;
    this.#perListener.set(listener, inListener + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      this.#perListener.set(listener, (this.#perListener.get(listener) ?? 1) - 1);
    };
  }

  /** The per-client caps (open connections, new-connection rate) alone. */
  admitClient(clientIp: string, now = Date.now()): (() => void) | LimitRefusal {
    const l = this.#limits;
    const client = clientKey(clientIp);
    const inClient = this.#perClient.get(client) ?? 0;
    if (l.perClientConnections !== null && inClient >= l.perClientConnections) {
      return "limit-client";
    }
    if (l.perClientRate !== null && !this.#take(client, l.perClientRate, l.perClientBurst, now)) {
      return "rate-limited";
    }
    this.#perClient.set(client, inClient + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const c = (this.#perClient.get(client) ?? 1) - 1;
      if (c <= 0) this.#perClient.delete(client);
      else this.#perClient.set(client, c);
    };
  }

  /** Token bucket: `rate` tokens a second, up to `burst`; each connection takes one. */
  #take(ip: string, rate: number, burst: number, now: number): boolean {
    this.#sweep(now, rate, burst);
    const b = this.#buckets.get(ip) ?? { tokens: burst, updated: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.updated) / 1000) * rate);
    b.updated = now;
    this.#buckets.set(ip, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Forgets buckets that have refilled completely: they hold nothing a fresh bucket would not,
   * and a scan of many client addresses must not grow memory without end.
   */
  #sweep(now: number, rate: number, burst: number): void {
    if (now - this.#lastSweep < 10_000) return;
    this.#lastSweep = now;
    const full = (burst / rate) * 1000;
    for (const [ip, b] of this.#buckets) if (now - b.updated > full) this.#buckets.delete(ip);
  }
}
