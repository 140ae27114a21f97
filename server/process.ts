/**
 * What serving one process and supervising workers share: the run flags, how a config is read
 * (at start and at each reload), logging set up from config and flags, and how a failed reload
 * is described. What they share once started is ./lifecycle.ts.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import { ConfigError, formatIssue, loadConfig, prepareConfig } from "../mod.ts";
import type { Config, LogLevel, PreparedConfig } from "../mod.ts";
import { configureLogging, isJournalStream } from "../proxy/observe/log.ts";

/** edgemux's version, as logged at start. */
export const VERSION: string = denoJson.version;

/** What `edgemux run` was asked for on its command line. */
export interface RunFlags {
  path: string;
  level?: LogLevel;
  format?: "text" | "json";
}

/** The one way configs are read: parse, then load and check what they refer to. */
export async function loadPrepared(
  path: string,
  writeDevCert = true,
): Promise<PreparedConfig> {
  const parsed = await loadConfig(path);
  return await prepareConfig(parsed.config, { warnings: parsed.warnings, writeDevCert });
}

/** Sets up logging from the config, with the command line's overrides. */
export async function setupLogging(config: Config, flags: RunFlags): Promise<void> {
  await configureLogging({
    level: flags.level ?? config.log.level,
    format: flags.format ?? config.log.format,
    access: config.log.access,
    journal: isJournalStream(),
  });
}

/** A failed reload or start, as one text: the config's issues, or the error's message. */
export function issuesText(e: unknown): string {
  if (e instanceof ConfigError) return e.issues.map(formatIssue).join("\n");
  return e instanceof Error ? e.message : String(e);
}
