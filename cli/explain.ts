/**
 * `edgemux explain`: which route a connection (and a request on it) would take, and why.
 *
 * @module
 */

import type { Protocol } from "../mod.ts";
import { PROTOCOLS } from "../config/types.ts";
import { explainConnection, inferProtocol } from "../routing/explain.ts";
import { parse, UsageError } from "./flags.ts";
import { loadForCommand } from "./output.ts";
import { DEFAULT_CONFIG, help, USAGE } from "./usage.ts";

/** `edgemux explain`: prints the route a described connection takes, and why. */
export async function explain(args: string[]): Promise<number> {
  const opts = parse(args, "explain");
  if (opts.help) return help("explain");
  if (opts.listener === undefined) {
    throw new UsageError(`--listener is required\n\n${USAGE.explain}`);
  }
  if (opts.protocol !== undefined && !PROTOCOLS.includes(opts.protocol as Protocol)) {
    throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(", ")}`);
  }
  const prepared = await loadForCommand(opts.config ?? DEFAULT_CONFIG, false);
  if (prepared === null) return 1;
  const listener = prepared.config.listeners.find((l) => l.name === opts.listener);
  if (listener === undefined) {
    console.error(
      `there is no listener "${opts.listener}"; the listeners are ${
        prepared.config.listeners.map((l) => `"${l.name}"`).join(", ")
      }`,
    );
    return 1;
  }
  // A server name or ALPN only exists in a TLS ClientHello; otherwise ask the routes.
  const fromHello = opts.sni !== undefined || opts.alpn !== undefined;
  const protocol: Protocol = (opts.protocol as Protocol | undefined) ??
    (fromHello ? "tls" : inferProtocol(listener));
  if (opts.protocol === undefined && !fromHello) {
    console.log(`(protocol ${protocol}, from the listener's routes; --protocol chooses another)`);
  }
  const lines = explainConnection(listener, {
    protocol,
    sni: opts.sni ?? (protocol === "tls" ? opts.host ?? null : null),
    alpn: opts.alpn ?? [],
    host: opts.host ?? null,
    path: opts.path ?? "/",
    pathNormalization: prepared.config.http.pathNormalization,
  });
  for (const line of lines) console.log(line);
  return 0;
}
