/**
 * `edgemux version`: the version and what it was built from.
 *
 * @module
 */

import { BUILD_INFO } from "../build_info.ts";
import { VERSION } from "../server/process.ts";
import { help } from "./usage.ts";

/** `edgemux version`: the version, then the build's values, one `key value` line each. */
function versionText(): string {
  const deno = BUILD_INFO.deno === "dev" ? Deno.version.deno : BUILD_INFO.deno;
  return [
    `edgemux ${VERSION}`,
    `commit  ${BUILD_INFO.commit}`,
    `deno    ${deno}`,
    `target  ${BUILD_INFO.target}`,
  ].join("\n");
}

/** `edgemux version` (also `--version`, `-V`): prints the version lines, or the help. */
export function version(args: string[]): number {
  if (args.includes("--help") || args.includes("-h")) return help("version");
  console.log(versionText());
  return 0;
}
