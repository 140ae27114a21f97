/**
 * Deno's permissions, said in edgemux's words. A read or an environment lookup that Deno did not
 * allow fails with `Deno.errors.NotCapable`; that is never a problem with the file or the YAML,
 * so it is reported as the missing permission with the flag that grants it.
 *
 * @module
 */

/** What a refused operation needed, and how to grant it. */
export interface MissingPermission {
  /** `read`, `write`, `env`, `net`, `run`, `sys` or `ffi`. */
  kind: string;
  /** The path, variable or host it was refused for, when Deno names one. */
  target: string | null;
  /** `Deno did not grant read access to "FILE"`. */
  message: string;
  /** `run with --allow-read=FILE (or --allow-read)`. */
  fix: string;
}

/**
 * Describes `e` when it is Deno refusing a permission (`NotCapable`), else returns null.
 * Deno's own text is `Requires read access to "FILE", run again with the --allow-read flag`.
 */
export function missingPermission(e: unknown): MissingPermission | null {
  if (!(e instanceof Deno.errors.NotCapable)) return null;
  const m = /Requires (\w+) access(?: to "([^"]*)")?/.exec(e.message);
  const kind = m?.[1] ?? "a";
  const target = m?.[2] ?? null;
  const flag = m ? `--allow-${kind}` : "the --allow-* flag it names";
  const scoped = target !== null && m ? `${flag}=${target} (or ${flag})` : flag;
  const what = `${kind} access${target !== null ? ` to "${target}"` : ""}`;
  if (isCompiled()) {
    // The compiled binary's permissions are fixed when it is built; no flag can add one.
    return {
      kind,
      target,
      message: `the edgemux binary may not have ${what} (its permissions are built in)`,
      fix: kind === "write"
        ? "keep what edgemux writes below /var/lib/edgemux (e.g. certificates.development." +
          "directory), the one place it may write; see docs/install.md, What the binary may do"
        : "see docs/install.md, What the binary may do: the path or name must be one it may use",
    };
  }
  return {
    kind,
    target,
    message: `Deno did not grant ${what} (a permission of the deno run command, not of the file)`,
    fix: `run with ${scoped}`,
  };
}

/** Running as a compiled binary (`deno compile`), not as `deno run main.ts`. */
function isCompiled(): boolean {
  return !/(^|\/)deno$/.test(Deno.execPath());
}
