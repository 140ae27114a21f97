/**
 * The `edgemux` command: `run`, `check`, `routes`, `explain`, `init`, `version`. The only module that
 * reads `Deno.args` or exits. Each command lives in cli/ (one file each, its help text in
 * cli/usage.ts) and returns its exit code; serving, supervising workers, reloads and signals are
 * the process layer's (server/), which returns exit codes too.
 *
 * Exit codes: 0 success, 1 invalid config, 2 usage error, 3 cannot bind or start, 4 not stopped
 * a second after a second stop signal.
 *
 * @module
 */

import { missingPermission } from "./config/permission.ts";
import { check } from "./cli/check.ts";
import { explain } from "./cli/explain.ts";
import { UsageError } from "./cli/flags.ts";
import { init } from "./cli/init.ts";
import { report } from "./cli/output.ts";
import { routes } from "./cli/routes.ts";
import { run } from "./cli/run.ts";
import { help, USAGE } from "./cli/usage.ts";
import { version } from "./cli/version.ts";

/** Runs the command that `args` name; returns its exit code. */
async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "run":
      return await run(rest, Deno.exit);
    case "check":
      return await check(rest);
    case "routes":
      return await routes(rest);
    case "explain":
      return await explain(rest);
    case "init":
      return await init(rest);
    case "version":
    case "--version":
    case "-V":
      return version(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      if (rest[0] && USAGE[rest[0]]) return help(rest[0]);
      return help("main");
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE.main}`);
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    const denied = missingPermission(e);
    if (e instanceof UsageError) {
      report(`edgemux: ${e.message}`, 3);
      code = 2;
    } else if (denied !== null) {
      report(`edgemux: ${denied.message}\n  fix: ${denied.fix}`, 3);
      code = 3;
    } else {
      report(`edgemux: ${e instanceof Error ? e.stack ?? e.message : e}`, 3);
      code = 3;
    }
  }
  Deno.exit(code);
}
