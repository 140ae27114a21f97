/**
 * `edgemux run`: the flags checked, the config loaded, then the process layer (server/) serves.
 *
 * @module
 */

import { ConfigError } from "../mod.ts";
import type { LogLevel, PreparedConfig } from "../mod.ts";
import { loadPrepared, type RunFlags } from "../server/process.ts";
import { isWorker, runServer } from "../server/run.ts";
import type { Exit } from "../server/signals.ts";
import { parse, UsageError } from "./flags.ts";
import { plural, printIssues, report } from "./output.ts";
import { DEFAULT_CONFIG, help } from "./usage.ts";

/**
 * `edgemux run`: loads the config and serves it (server/run.ts) until stopped; returns the exit
 * code (0 stopped, 1 invalid config, 3 could not bind or start). `exit` is main.ts's, for the
 * one early exit a second stop signal may need.
 */
export async function run(args: string[], exit: Exit): Promise<number> {
  const opts = parse(args, "run");
  if (opts.help) return help("run");
  const levels = ["debug", "info", "warning", "error"];
  if (opts["log-level"] !== undefined && !levels.includes(opts["log-level"])) {
    throw new UsageError(`--log-level must be one of ${levels.join(", ")}`);
  }
  if (opts["log-format"] !== undefined && !["text", "json"].includes(opts["log-format"])) {
    throw new UsageError("--log-format must be text or json");
  }
  const flags: RunFlags = {
    path: opts.config ?? DEFAULT_CONFIG,
    level: opts["log-level"] as LogLevel | undefined,
    format: opts["log-format"] as "text" | "json" | undefined,
  };
  const worker = isWorker();
  let prepared: PreparedConfig;
  try {
    prepared = await loadPrepared(flags.path);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    report(
      `edgemux: not starting: ${flags.path} is invalid (${plural(e.errors.length, "error")})`,
      3,
    );
    return 1;
  }
  return await runServer(prepared, flags, worker, exit);
}
