/**
 * TCP clients with a chosen source address. Deno.connect cannot bind the local side, node:net
 * can; on Linux every address in 127.0.0.0/8 is loopback, so `127.0.0.2` is a second client
 * address for per-client limits without any network setup.
 *
 * @module
 */

import net from "node:net";

/** A connection from {@linkcode connectFrom}: what arrived so far, and when it closed. */
export interface SourceConn {
  /** The local address the kernel bound (the one edgemux sees). */
  readonly localAddress: string;
  /** The local port the kernel chose (the client port edgemux, or a proxy, sees). */
  readonly localPort: number;
  /** Everything received so far, decoded as Latin-1 (bytes stay bytes). */
  text(): string;
  /** Resolves true once the received text contains `needle`, false after `timeoutMs`. */
  waitForText(needle: string, timeoutMs: number): Promise<boolean>;
  /** Resolves true once the peer has closed (or reset), false after `timeoutMs`. */
  waitForClose(timeoutMs: number): Promise<boolean>;
  write(data: string | Uint8Array): Promise<void>;
  /** Closes at once (a reset if data is unread). */
  destroy(): void;
}

/** Connects to 127.0.0.1:`port` from `localAddress`. Rejects when the connect fails. */
export function connectFrom(localAddress: string, port: number): Promise<SourceConn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    let received = "";
    let closed = false;
    const waiters = new Set<() => void>();
    const wake = () => {
      for (const w of [...waiters]) w();
    };
    socket.on("data", (chunk: Uint8Array) => {
      for (const b of chunk) received += String.fromCharCode(b);
      wake();
    });
    socket.on("close", () => {
      closed = true;
      wake();
    });
    socket.on("error", () => {
      // A reset counts as a close; `close` follows.
    });
    const waitUntil = (done: () => boolean, timeoutMs: number) =>
      new Promise<boolean>((res) => {
        if (done()) return res(true);
        const check = () => {
          if (!done()) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(true);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          res(done());
        }, timeoutMs);
        waiters.add(check);
      });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve({
        localAddress: socket.localAddress ?? "",
        localPort: socket.localPort ?? 0,
        text: () => received,
        waitForText: (needle, timeoutMs) => waitUntil(() => received.includes(needle), timeoutMs),
        waitForClose: (timeoutMs) => waitUntil(() => closed, timeoutMs),
        write: (data) =>
          new Promise<void>((res, rej) => socket.write(data, (e) => e ? rej(e) : res())),
        destroy: () => socket.destroy(),
      });
    });
    socket.once("error", reject);
  });
}
