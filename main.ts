/**
 * The `edgemux` command: `run`, `check`, `version`. The only module that reads `Deno.args`,
 * installs signal handlers or exits.
 *
 * Exit codes: 0 success, 1 invalid config, 2 usage error, 3 cannot bind or start.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { ConfigError, formatIssue, loadConfig, prepareConfig, start } from "./mod.ts";
import type { ConfigIssue, LogLevel } from "./mod.ts";
import { BindError } from "./proxy/runtime.ts";
import { closeLogging, configureLogging, log } from "./proxy/log.ts";

const VERSION: string = denoJson.version;
const PINNED_DENO = "2.9.6";
const DEFAULT_CONFIG = "/etc/edgemux/edgemux.yaml";

const USAGE: Record<string, string> = {
  main: `edgemux ${VERSION}: one program on ports 22, 80 and 443 that sends each connection to the
right service (TLS passthrough by SNI, SSH, plain TCP, http→https redirects).

Usage:
  edgemux run     [-c PATH] [--log-level LEVEL] [--log-format text|json]
  edgemux check   [-c PATH]
  edgemux version
  edgemux COMMAND --help

PATH is a YAML file or a directory of *.yaml files (default ${DEFAULT_CONFIG}).
The config reference is docs/config.md.`,
  run: `Usage: edgemux run [-c PATH] [--log-level LEVEL] [--log-format text|json]

Loads the config, binds every listener and serves until SIGTERM or SIGINT, then stops
gracefully (open connections get shutdown_timeout to finish).

Options:
  -c, --config PATH     config file or directory (default ${DEFAULT_CONFIG})
  --log-level LEVEL     debug, info, warning or error (overrides log.level)
  --log-format FORMAT   text or json (overrides log.format)
  -h, --help            show this help`,
  check: `Usage: edgemux check [-c PATH]

Validates the config without binding anything. Errors and warnings go to standard error,
each with file, line, column and key path. Exit status 0 when the config is valid, 1 when not.

Options:
  -c, --config PATH     config file or directory (default ${DEFAULT_CONFIG})
  -h, --help            show this help`,
  version: `Usage: edgemux version

Prints the edgemux version and the Deno runtime it runs on.`,
};

class UsageError extends Error {}

function parse(args: string[], command: string) {
  const common = {
    help: { type: "boolean", short: "h" },
  } as const;
  const options = command === "run"
    ? {
      ...common,
      config: { type: "string", short: "c" },
      "log-level": { type: "string" },
      "log-format": { type: "string" },
    } as const
    : command === "check"
    ? { ...common, config: { type: "string", short: "c" } } as const
    : common;
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values as {
      help?: boolean;
      config?: string;
      "log-level"?: string;
      "log-format"?: string;
    };
  } catch (e) {
    throw new UsageError(`${e instanceof Error ? e.message : e}\n\n${USAGE[command]}`);
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function printIssues(issues: ConfigIssue[]): void {
  for (const issue of issues) console.error(formatIssue(issue));
}

async function check(args: string[]): Promise<number> {
  const opts = parse(args, "check");
  if (opts.help) return help("check");
  const path = opts.config ?? DEFAULT_CONFIG;
  try {
    const parsed = await loadConfig(path);
    const { config, warnings } = await prepareConfig(parsed.config, {
      warnings: parsed.warnings,
      writeDevCert: false,
    });
    printIssues(warnings);
    const routes = config.listeners.reduce((n, l) => n + l.routes.length, 0);
    console.error(
      `${path}: valid (${plural(config.listeners.length, "listener")}, ${
        plural(routes, "route")
      }, ` +
        `${plural(config.backends.size, "backend")}` +
        `${warnings.length ? `, ${plural(warnings.length, "warning")}` : ""})`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    console.error(`${path}: invalid (${plural(e.errors.length, "error")})`);
    return 1;
  }
}

async function run(args: string[]): Promise<number> {
  const opts = parse(args, "run");
  if (opts.help) return help("run");
  const levels = ["debug", "info", "warning", "error"];
  if (opts["log-level"] !== undefined && !levels.includes(opts["log-level"])) {
    throw new UsageError(`--log-level must be one of ${levels.join(", ")}`);
  }
  if (opts["log-format"] !== undefined && !["text", "json"].includes(opts["log-format"])) {
    throw new UsageError("--log-format must be text or json");
  }
  const path = opts.config ?? DEFAULT_CONFIG;
  let loaded;
  try {
    const parsed = await loadConfig(path);
    loaded = await prepareConfig(parsed.config, { warnings: parsed.warnings });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    console.error(
      `edgemux: not starting: ${path} is invalid (${plural(e.errors.length, "error")})`,
    );
    return 1;
  }
  const { config, warnings } = loaded;
  await configureLogging({
    level: (opts["log-level"] as LogLevel | undefined) ?? config.log.level,
    format: (opts["log-format"] as "text" | "json" | undefined) ?? config.log.format,
    access: config.log.access,
  });
  if (Deno.version.deno !== PINNED_DENO) {
    log.warn("edgemux is tested on one Deno version only", {
      expected: PINNED_DENO,
      running: Deno.version.deno,
    });
  }
  for (const w of warnings) {
    log.warn(w.message, {
      at: w.position ? `${w.position.file}:${w.position.line}:${w.position.column}` : null,
      path: w.path,
      fix: w.fix,
    });
  }
  // Containment (DENO-FACTS §9): a stray rejection must never take the proxy down.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled rejection", { error: String(e.reason) });
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    log.error("uncaught error", { error: String(e.error ?? e.message) });
  });

  let proxy;
  try {
    proxy = await start(loaded);
  } catch (e) {
    if (!(e instanceof BindError)) throw e;
    log.error(e.message, { listener: e.listener, address: e.address });
    await closeLogging();
    return 3;
  }
  log.info("edgemux started", { version: VERSION, config: path, pid: Deno.pid });

  const stopped = Promise.withResolvers<string>();
  const onStop = (signal: Deno.Signal) => () => stopped.resolve(signal);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, onStop(signal));
  }
  const signal = await stopped.promise;
  log.info("stopping", { signal, timeout_ms: config.shutdownTimeout });
  // A second signal during the drain means "now".
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(s, () => {
      log.warn("second stop signal: closing every connection now", { signal: s });
      void proxy.shutdown(0);
    });
  }
  await proxy.shutdown();
  log.info("stopped");
  await closeLogging();
  return 0;
}

function help(command: string): number {
  console.log(USAGE[command]);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "run":
      return await run(rest);
    case "check":
      return await check(rest);
    case "version":
    case "--version":
    case "-V":
      if (rest.includes("--help") || rest.includes("-h")) return help("version");
      console.log(`edgemux ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8})`);
      return 0;
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
    if (e instanceof UsageError) {
      console.error(`edgemux: ${e.message}`);
      code = 2;
    } else {
      console.error(`edgemux: ${e instanceof Error ? e.stack ?? e.message : e}`);
      code = 3;
    }
  }
  Deno.exit(code);
}
