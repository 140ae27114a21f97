/**
 * Reading a config from disk: one YAML file, or a directory whose `*.yaml` files are merged.
 * Everything after reading the bytes is {@link parseConfigSources}.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { missingPermission } from "./permission.ts";
import { type ConfigSource, parseConfigSources, type ParsedConfig } from "./parse.ts";

/**
 * Reads the config files at `path` (a file, or a directory of `*.yaml` / `*.yml` files read in
 * name order).
 *
 * @throws {ConfigError} When the path cannot be read.
 */
export async function readConfigSources(path: string): Promise<ConfigSource[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw unreadable(path, e);
  }
  if (!info.isDirectory) {
    try {
      return [{ file: path, text: await Deno.readTextFile(path) }];
    } catch (e) {
      throw unreadable(path, e);
    }
  }
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) {
      if (
        (entry.isFile || entry.isSymlink) && !entry.name.startsWith(".") &&
        (entry.name.endsWith(".yaml") || entry.name.endsWith(".yml"))
      ) {
        names.push(entry.name);
      }
    }
  } catch (e) {
    throw unreadable(path, e);
  }
  names.sort();
  if (names.length === 0) {
    throw new ConfigError([{
      severity: "error",
      position: null,
      path: "",
      message: `the directory ${path} holds no *.yaml files`,
      fix: "put the config in a .yaml file there, or point -c at the file",
    }]);
  }
  const sep = path.endsWith("/") ? "" : "/";
  const sources: ConfigSource[] = [];
  for (const name of names) {
    const file = `${path}${sep}${name}`;
    try {
      sources.push({ file, text: await Deno.readTextFile(file) });
    } catch (e) {
      throw unreadable(file, e);
    }
  }
  return sources;
}

/**
 * Reads and validates the config at `path`.
 *
 * @throws {ConfigError} When it cannot be read or is not valid.
 */
export async function loadConfig(path: string): Promise<ParsedConfig> {
  return parseConfigSources(await readConfigSources(path));
}

function unreadable(path: string, e: unknown): ConfigError {
  const denied = missingPermission(e);
  if (denied !== null) {
    return new ConfigError([{
      severity: "error",
      position: null,
      path: "",
      message: `cannot read the config at ${path}: ${denied.message}`,
      fix: denied.fix,
    }]);
  }
  const reason = e instanceof Deno.errors.NotFound
    ? "it does not exist"
    : e instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : e instanceof Error
    ? e.message
    : String(e);
  return new ConfigError([{
    severity: "error",
    position: null,
    path: "",
    message: `cannot read the config at ${path}: ${reason}`,
    fix: e instanceof Deno.errors.NotFound
      ? "check the path given with -c / --config"
      : "check the file's permissions",
  }]);
}
