/**
 * What serving one process and supervising workers share: the run flags, how a config is read
 * (at start and at each reload), logging set up from config and flags, and how a failed reload
 * is described, and the admin listener following a reload.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import { ConfigError, formatIssue, loadConfig, prepareConfig } from "../mod.ts";
import type { Config, LogLevel, PreparedConfig } from "../mod.ts";
import { formatHostPort } from "../config/address.ts";
import { configureLogging, isJournalStream, log } from "../proxy/observe/log.ts";
import { adminAccess, type AdminServer, type AdminSource, startAdmin } from "./admin.ts";

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

/**
 * Replaces the admin listener when its address changed in a reload, and applies its new access
 * rules (names, token) either way.
 */
export async function moveAdmin(
  admin: AdminServer | null,
  before: Config,
  prepared: PreparedConfig,
  source: AdminSource,
): Promise<AdminServer | null> {
  const after = prepared.config;
  const was = before.admin ? formatHostPort(before.admin.bind) : null;
  const now = after.admin ? formatHostPort(after.admin.bind) : null;
  const access = after.admin ? adminAccess(after.admin, prepared.adminToken) : null;
  if (was === now) {
    if (access !== null) admin?.update(access);
    return admin;
  }
  await admin?.close();
  if (after.admin === null || access === null) return null;
  try {
    return startAdmin(after.admin.bind, source, access);
  } catch (e) {
    log.error("the admin listener could not move to its new address", {
      error: e instanceof Error ? e.message : String(e),
    });
    return null;
  }
}
