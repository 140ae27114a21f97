/**
 * Binding a listener's address: the one place a listening socket is opened, and the error that
 * says, for each way binding fails, what to do about it.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../config/address.ts";

/** Raised when a listener cannot bind its address. */
export class BindError extends Error {
  /**
   * Makes the error for one address that could not be bound.
   *
   * @param listener The name of the listener whose address failed.
   * @param address The address that could not be bound, `host:port`.
   * @param message What went wrong, naming the address.
   * @param options The underlying error as `cause`.
   */
  constructor(
    readonly listener: string,
    readonly address: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "BindError";
  }
}

/** Opens a listening socket for `bind`, one of `listener`'s addresses. */
export function bindOne(listener: string, bind: HostPort, reusePort: boolean): Deno.TcpListener {
  const address = formatHostPort(bind);
  try {
    return Deno.listen({ hostname: bind.host, port: bind.port, transport: "tcp", reusePort });
  } catch (e) {
    let message: string;
    if (e instanceof Deno.errors.AddrInUse) {
      message =
        `cannot bind ${address} for listener "${listener}": the address is already in use ` +
        `(another process, or another edgemux, is listening there)`;
    } else if (e instanceof Deno.errors.PermissionDenied) {
      message = `cannot bind ${address} for listener "${listener}": permission denied. ` +
        `Ports below 1024 need root or the CAP_NET_BIND_SERVICE capability ` +
        `(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; or setcap cap_net_bind_service=+ep on the binary)`;
    } else if (e instanceof Deno.errors.AddrNotAvailable) {
      message =
        `cannot bind ${address} for listener "${listener}": that address is not on this host`;
    } else if (e instanceof Deno.errors.NotCapable) {
      message = `cannot bind ${address} for listener "${listener}": ` +
        `Deno's --allow-net permission does not include it`;
    } else {
      message = `cannot bind ${address} for listener "${listener}": ${
        e instanceof Error ? e.message : String(e)
      }`;
    }
    throw new BindError(listener, address, message, { cause: e });
  }
}
