/**
 * `edgemux check`: validates a config and what it refers to, as text on standard error or as
 * one JSON object on standard output (`--format json`).
 *
 * @module
 */

import { ConfigError } from "../mod.ts";
import type { ConfigIssue } from "../mod.ts";
import { loadPrepared } from "../server/process.ts";
import { parse, UsageError } from "./flags.ts";
import { loadForCommand, plural, printIssues, report } from "./output.ts";
import { DEFAULT_CONFIG, help } from "./usage.ts";

/** One issue as `check --format json` writes it. */
function issueJson(issue: ConfigIssue) {
  return {
    file: issue.position?.file ?? null,
    line: issue.position?.line ?? null,
    column: issue.position?.column ?? null,
    path: issue.path,
    value: issue.value ?? null,
    message: issue.message,
    fix: issue.fix,
  };
}

/** `check --format json`: the whole verdict as one JSON object on standard output. */
async function checkJson(path: string): Promise<number> {
  let issues: readonly ConfigIssue[];
  let valid: boolean;
  try {
    issues = (await loadPrepared(path, false)).warnings;
    valid = true;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    issues = e.issues;
    valid = false;
  }
  console.log(JSON.stringify({
    config: path,
    valid,
    errors: issues.filter((i) => i.severity === "error").map(issueJson),
    warnings: issues.filter((i) => i.severity === "warning").map(issueJson),
  }));
  return valid ? 0 : 1;
}

/** `edgemux check`: validates a config without binding anything; 0 valid, 1 invalid. */
export async function check(args: string[]): Promise<number> {
  const opts = parse(args, "check");
  if (opts.help) return help("check");
  const path = opts.config ?? DEFAULT_CONFIG;
  if (opts.format !== undefined && opts.format !== "text" && opts.format !== "json") {
    throw new UsageError(`--format must be text or json, not "${opts.format}"`);
  }
  if (opts.format === "json") return await checkJson(path);
  const prepared = await loadForCommand(path, false);
  if (prepared === null) return 1;
  const { config, warnings } = prepared;
  printIssues(warnings);
  const routes = config.listeners.reduce((n, l) => n + l.routes.length, 0);
  report(
    `${path}: valid (${plural(config.listeners.length, "listener")}, ${plural(routes, "route")}, ` +
      `${plural(config.backends.size, "backend")}` +
      `${warnings.length ? `, ${plural(warnings.length, "warning")}` : ""})`,
    6,
  );
  return 0;
}
