/**
 * edgemux as a library: parse a config, start the proxy, stop it.
 *
 * @example Start on a config and stop again
 * ```ts
 * import assert from "node:assert/strict";
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
 * const proxy = await start(config);
 * const [addr] = proxy.addrs.get("tcp")!;
 * assert.equal(addr.hostname, "127.0.0.1");
 * assert.ok(addr.port > 0); // port 0 in the config: the system picked a free port
 * assert.equal(proxy.activeConnections, 0);
 * await proxy.shutdown();
 * ```
 *
 * @module
 */

import type { Config } from "./config/types.ts";
import { prepareConfig, type PreparedConfig } from "./proxy/prepare.ts";
import { type ProxyHandle, type StartOptions, startProxy } from "./proxy/runtime.ts";

export type * from "./config/types.ts";
export { PROTOCOLS } from "./config/types.ts";
export type { HostPort } from "./config/address.ts";
export type { PathNormalization } from "./routing/path.ts";
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
export { BindError } from "./proxy/bind.ts";
export type { ProxyHandle, StartOptions } from "./proxy/runtime.ts";
export type { StatusReport } from "./proxy/observe/status.ts";
export type { Problem } from "./proxy/observe/log.ts";
export type { AcmeNameStatus } from "./proxy/tls/certs/acme.ts";
export type {
  AccessObserver,
  AccessRecord,
  EndReason,
  EndSource,
  RequestEnd,
  RequestObserver,
  RequestRecord,
  UpstreamEnd,
} from "./proxy/observe/records.ts";
export { END_REASONS, endSource, REQUEST_END_REASONS } from "./proxy/observe/records.ts";
export { prepareConfig, type PreparedConfig, type PrepareOptions } from "./proxy/prepare.ts";

/**
 * Loads what `config` refers to (certificates, backend CAs), binds every listener and starts
 * serving.
 *
 * @param config A config from {@link parseConfig} or {@link loadConfig}, or one already
 *   prepared with {@link prepareConfig}.
 * @param options Hooks, such as observers for every access record.
 * @returns A handle with the bound addresses, `reload()` and `shutdown()`.
 * @throws {ConfigError} When a certificate or another file the config names is unusable.
 * @throws {BindError} When an address cannot be bound; nothing stays bound then.
 */
export async function start(
  config: Config | PreparedConfig,
  options?: StartOptions,
): Promise<ProxyHandle> {
  const prepared = "backendTls" in config ? config : await prepareConfig(config);
  return startProxy(prepared, options);
}
