/**
 * `edgemux routes`: the compiled route table, as `edgemux` will match connections against it.
 *
 * @module
 */

import { formatHostPort } from "../config/address.ts";
import { describeAction, describeMatch } from "../proxy/observe/status.ts";
import { parse } from "./flags.ts";
import { loadForCommand } from "./output.ts";
import { DEFAULT_CONFIG, help } from "./usage.ts";

/** `edgemux routes`: each listener's routes and each backend, one line each. */
export async function routes(args: string[]): Promise<number> {
  const opts = parse(args, "routes");
  if (opts.help) return help("routes");
  const prepared = await loadForCommand(opts.config ?? DEFAULT_CONFIG, false);
  if (prepared === null) return 1;
  const { config } = prepared;
  for (const l of config.listeners) {
    console.log(`listener ${l.name}  ${l.binds.map(formatHostPort).join(", ")}`);
    l.routes.forEach((r, i) => {
      console.log(
        `  ${String(i).padStart(2)}  ${r.name.padEnd(20)} ${describeMatch(r).padEnd(40)} ${
          describeAction(r)
        }`,
      );
    });
  }
  for (const b of config.backends.values()) {
    const servers = b.servers.map((s) =>
      `${s.label}${s.weight !== 1 ? ` weight ${s.weight}` : ""}${s.backup ? " backup" : ""}`
    );
    console.log(`backend ${b.name}  ${b.balance}  ${servers.join(", ")}${b.tls ? "  (tls)" : ""}`);
  }
  return 0;
}
