/**
 * systemd's readiness protocol (sd_notify): when started by a `Type=notify` unit, systemd sets
 * `NOTIFY_SOCKET` and waits for `READY=1`; `RELOADING=1` and `STOPPING=1` tell it about reloads
 * and stops. Messages are datagrams on a unix socket (needs the `net` unstable API, which
 * deno.json enables).
 *
 * @module
 */

import { log } from "../proxy/observe/log.ts";

/** Sends sd_notify messages; every method is a no-op when systemd did not ask for them. */
export class Notifier {
  readonly #path: string | null;
  #socket: Deno.DatagramConn | null = null;
  #warned = false;

  /** @param socketPath The value of `NOTIFY_SOCKET`, or undefined outside systemd. */
  constructor(socketPath: string | undefined) {
    // Abstract socket names (leading "@") cannot be addressed from Deno; systemd itself uses a
    // path (/run/systemd/notify), so only nested service managers are affected.
    this.#path = socketPath && socketPath.startsWith("/") ? socketPath : null;
  }

  /** Sends one message (lines such as `READY=1`, `STATUS=…`). Never throws. */
  async send(...lines: string[]): Promise<void> {
    if (this.#path === null) return;
    try {
      this.#socket ??= Deno.listenDatagram(
        { transport: "unixpacket" } as Deno.UnixListenOptions & {
          transport: "unixpacket";
        },
      );
      await this.#socket.send(new TextEncoder().encode(lines.join("\n")), {
        transport: "unixpacket",
        path: this.#path,
      });
    } catch (e) {
      // Readiness is best effort, but a service manager waiting for READY=1 would otherwise
      // time out with no clue why: say so once.
      if (!this.#warned) {
        this.#warned = true;
        log.warn("cannot send sd_notify messages", {
          socket: this.#path,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  ready(status: string): Promise<void> {
    return this.send("READY=1", `STATUS=${status}`, `MAINPID=${Deno.pid}`);
  }

  /** A reload starts; systemd wants the monotonic clock with it (sd_notify(3)). */
  reloading(): Promise<void> {
    return this.send("RELOADING=1", `MONOTONIC_USEC=${monotonicMicros()}`, "STATUS=reloading");
  }

  stopping(): Promise<void> {
    return this.send("STOPPING=1", "STATUS=stopping");
  }

  close(): void {
    try {
      this.#socket?.close();
    } catch {
      // Already closed.
    }
    this.#socket = null;
  }
}

/**
 * Time since boot in microseconds. Deno exposes no clock_gettime(CLOCK_MONOTONIC); /proc/uptime
 * counts from the same boot (it also counts suspended time, which a server rarely has), and
 * systemd only uses the value to order the reload against its own clock.
 */
function monotonicMicros(): string {
  try {
    const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
    return String(Math.round(uptime * 1_000_000));
  } catch {
    return String(Math.round(performance.now() * 1000));
  }
}
