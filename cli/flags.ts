/**
 * The command line's flags: which each command takes, and the usage error a wrong one gives
 * (main.ts prints it and exits with status 2).
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { USAGE } from "./usage.ts";

/** A wrong command line: main.ts prints the message and exits with status 2. */
export class UsageError extends Error {}

/** Every flag any command takes; each command reads its own. */
export interface Flags {
  help?: boolean;
  format?: string;
  ports?: string;
  backend?: string;
  name?: string;
  admin?: string;
  system?: boolean;
  force?: boolean;
  print?: boolean;
  config?: string;
  "log-level"?: string;
  "log-format"?: string;
  listener?: string;
  protocol?: string;
  sni?: string;
  alpn?: string[];
  host?: string;
  path?: string;
}

/** The flags of `command` (run, check, routes, explain; any other takes only --help). */
export function parse(args: string[], command: string): Flags {
  const common = { help: { type: "boolean", short: "h" } } as const;
  const config = { config: { type: "string", short: "c" } } as const;
  const options: ParseArgsConfig["options"] = command === "run"
    ? {
      ...common,
      ...config,
      "log-level": { type: "string" },
      "log-format": { type: "string" },
    } as const
    : command === "explain"
    ? {
      ...common,
      ...config,
      listener: { type: "string" },
      protocol: { type: "string" },
      sni: { type: "string" },
      alpn: { type: "string", multiple: true },
      host: { type: "string" },
      path: { type: "string" },
    } as const
    : command === "check"
    ? { ...common, ...config, format: { type: "string" } } as const
    : command === "routes"
    ? { ...common, ...config }
    : common;
  return parseWithPositionals(args, command, options, 0).flags;
}

/**
 * Parses `args` against `options`, allowing up to `maxPositionals` arguments that are not flags.
 *
 * @throws {UsageError} naming the wrong flag or argument, followed by the command's help.
 */
export function parseWithPositionals(
  args: string[],
  command: string,
  options: ParseArgsConfig["options"],
  maxPositionals: number,
): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: maxPositionals > 0,
      strict: true,
    });
    if (positionals.length > maxPositionals) {
      throw new Error(`unexpected argument "${positionals[maxPositionals]}"`);
    }
    return { flags: values as Flags, positionals };
  } catch (e) {
    throw new UsageError(`${e instanceof Error ? e.message : e}\n\n${USAGE[command]}`);
  }
}
