/**
 * edgemux as a library: parse a config, start the proxy, stop it.
 *
 * @example Start on a config and stop again
 * ```ts
 * import { parseConfig, start } from "./mod.ts";
 *
 * const { config } = parseConfig(`
 * version: 1
 * backends:
 *   echo: { servers: ["127.0.0.1:7"] }
 * listeners:
 *   tcp:
 *     bind: "127.0.0.1:0"
 *     routes:
 *       - forward: echo
 * `);
 * const proxy = start(config);
 * const [addr] = proxy.addrs.get("tcp")!;
 * console.log(`forwarding on port ${addr.port}`);
 * await proxy.shutdown();
 * ```
 *
 * @module
 */

import type { Config } from "./config/types.ts";
import { type ProxyHandle, type StartOptions, startProxy } from "./proxy/runtime.ts";

export type * from "./config/types.ts";
export type { HostPort } from "./config/address.ts";
export {
  ConfigError,
  type ConfigIssue,
  formatIssue,
  type SourcePosition,
} from "./config/errors.ts";
export {
  type ConfigSource,
  parseConfig,
  parseConfigSources,
  type ParsedConfig,
} from "./config/parse.ts";
export { loadConfig, readConfigSources } from "./config/load.ts";
export { BindError, type ProxyHandle, type StartOptions } from "./proxy/runtime.ts";
export type { AccessObserver, AccessRecord } from "./proxy/context.ts";

/**
 * Binds every listener of `config` and starts serving.
 *
 * @param config A config from {@link parseConfig} or {@link loadConfig}.
 * @param options Hooks, such as an observer for every access record.
 * @returns A handle with the bound addresses and `shutdown()`.
 * @throws {BindError} When an address cannot be bound; nothing stays bound then.
 */
export function start(config: Config, options?: StartOptions): ProxyHandle {
  return startProxy(config, options);
}
