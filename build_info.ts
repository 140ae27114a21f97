/**
 * What `edgemux version` says about the build. These are the values of a run from source;
 * scripts/build.sh writes this file anew, in the copy of the source it compiles, with the commit,
 * the Deno version and the target of the release build.
 *
 * @module
 */

/** Values baked into a release binary at build time. */
export interface BuildInfo {
  /** The git commit the binary was built from, or "dev". */
  commit: string;
  /** The version of the Deno that compiled it, or "dev". */
  deno: string;
  /** The `deno compile --target`, such as x86_64-unknown-linux-gnu, or "dev". */
  target: string;
}

export const BUILD_INFO: BuildInfo = { commit: "dev", deno: "dev", target: "dev" };
