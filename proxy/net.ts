/**
 * Small socket helpers shared by the connection phases.
 *
 * @module
 */

import { TIMED_OUT } from "./deadlines.ts";

/** A peer address as logged and as written into PROXY protocol headers. */
export interface PeerAddress {
  /** IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, seen on dual-stack binds) are unmapped. */
  ip: string;
  port: number;
  family: 4 | 6;
}

/** The address of a TCP peer, with IPv4-mapped IPv6 addresses turned back into IPv4. */
export function peerAddress(addr: Deno.Addr): PeerAddress {
  const net = addr as Deno.NetAddr;
  let ip = net.hostname;
  if (ip.startsWith("::ffff:") && ip.includes(".")) ip = ip.slice(7);
  return { ip, port: net.port, family: ip.includes(":") ? 6 : 4 };
}

/** Closes a resource that may already be closed. */
export function closeQuietly(c: { close(): void } | null | undefined): void {
  if (!c) return;
  try {
    c.close();
  } catch {
    // Already closed: nothing to release.
  }
}

/** Writes all of `data`: `Conn.write` may write fewer bytes than asked. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

/** True for the errors a peer causes by going away; they are routine, not faults. */
export function isPeerGone(e: unknown): boolean {
  return e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.BrokenPipe ||
    e instanceof Deno.errors.ConnectionAborted ||
    e instanceof Deno.errors.NotConnected ||
    e instanceof Deno.errors.UnexpectedEof;
}

/** True for errors that mean "this side was closed locally" (a timeout or shutdown closed it). */
export function isClosedLocally(e: unknown): boolean {
  return e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}

/** Sets TCP_NODELAY: Deno leaves Nagle on for raw sockets, which delays small relayed writes. */
export function noDelay(conn: Deno.Conn): void {
  try {
    (conn as Deno.TcpConn).setNoDelay(true);
  } catch {
    // The socket may already be gone; the next read or write will say so.
  }
}

/**
 * Reads into `buf`, giving up after `ms` with {@link TIMED_OUT}. Deno reads cannot be
 * cancelled, so on a timeout the read stays pending (its outcome is ignored) and the caller must
 * close the connection.
 */
export async function readWithin(
  conn: Deno.Conn,
  buf: Uint8Array,
  ms: number,
): Promise<number | null | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = conn.read(buf);
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms));
  });
  try {
    const result = await Promise.race([read, timeout]);
    if (result === TIMED_OUT) read.catch(() => {});
    return result;
  } finally {
    clearTimeout(timer);
  }
}
