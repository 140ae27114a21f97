/**
 * For the tests of the release scripts (scripts/, install.sh): paths, and a stand-in for the
 * compiled binary. `deno compile` cannot fetch its runtime on these machines, so a shell script
 * that runs main.ts with exactly the compile task's permissions takes the binary's place; the
 * release workflow runs the same scripts on the real binaries.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import denoJson from "../../deno.json" with { type: "json" };
import type { RunResult } from "./process.ts";

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The path of a script in scripts/. */
export function script(name: string): string {
  return `${ROOT}scripts/${name}`;
}

/** Exit status and both outputs, for assertion messages. */
export function describe(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** The permission flags of deno.json's compile task: what the binary is allowed. */
export function compilePermissionFlags(): string[] {
  const task: string = denoJson.tasks.compile;
  return task.split(/\s+/).filter((w) =>
    /^--(allow|deny|ignore)-[a-z]+(=.*)?$/.test(w) || w === "--no-prompt"
  );
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes an executable shell script at `path` that behaves as the compiled edgemux does, as far
 * as it can: main.ts under the compile task's permissions, with build_info.ts's "dev" values.
 */
export async function writeStandIn(path: string): Promise<void> {
  const words = [
    Deno.execPath(),
    "run",
    ...compilePermissionFlags(),
    "--config",
    `${ROOT}deno.json`,
    `${ROOT}main.ts`,
  ];
  const text = [
    "#!/bin/sh",
    "# A stand-in for the compiled edgemux (tests/_helpers/release.ts).",
    `exec ${words.map(shellQuote).join(" ")} "$@"`,
    "",
  ].join("\n");
  await Deno.writeTextFile(path, text, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
}
