/**
 * Backend configs for unit tests, parsed from YAML by the same code that reads edgemux's config
 * files, so a test cannot hand Backend a config the parser would never produce.
 *
 * @module
 */

import { parseConfig } from "../../config/parse.ts";
import type { BackendConfig } from "../../config/types.ts";

/**
 * The config of backend `b` whose keys are `body`: YAML as it would stand under `b:`, written
 * without that indentation. The config around it has one listener forwarding to `b`, so the
 * backend counts as used.
 *
 * @param body the backend's keys, e.g. `servers: ["127.0.0.1:1"]\nbalance: first`
 * @param file the file name the config is parsed as (relative paths resolve beside it)
 * @returns the parsed config of `b`
 */
export function parseBackendConfig(body: string, file: string): BackendConfig {
  const indented = body.trim().split("\n").map((line) => `    ${line}`).join("\n");
  const yaml = `version: 1
backends:
  b:
${indented}
listeners:
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`;
  const b = parseConfig(yaml, file).config.backends.get("b");
  if (b === undefined) throw new Error("backend b is missing from the parsed config");
  return b;
}
