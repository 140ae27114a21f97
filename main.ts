/**
 * The `edgemux` command: `run`, `check`, `routes`, `explain`, `init`, `version`. The only module that
 * reads `Deno.args` or exits: serving, supervising workers, reloads and signals are the process
 * layer's (server/), which returns exit codes.
 *
 * Exit codes: 0 success, 1 invalid config, 2 usage error, 3 cannot bind or start, 4 not stopped
 * a second after a second stop signal.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { BUILD_INFO } from "./build_info.ts";
import { ConfigError, formatIssue } from "./mod.ts";
import type { ConfigIssue, LogLevel, PreparedConfig, Protocol } from "./mod.ts";
import { formatHostPort } from "./config/address.ts";
import { missingPermission } from "./config/permission.ts";
import { PROTOCOLS } from "./config/types.ts";
import {
  parseStarterPorts,
  renderStarter,
  STARTER_DEFAULTS,
  starterCommand,
  type StarterOptions,
  starterProblem,
  SYSTEM_STARTER,
} from "./config/starter.ts";
import { isJournalStream } from "./proxy/observe/log.ts";
import { describeAction, describeMatch } from "./proxy/observe/status.ts";
import { loadPrepared, type RunFlags } from "./server/process.ts";
import { isWorker, runServer } from "./server/run.ts";
import { explainConnection, inferProtocol } from "./routing/explain.ts";

const VERSION: string = denoJson.version;
const DEFAULT_CONFIG = "/etc/edgemux/edgemux.yaml";

const CONFIG_HELP = `  -c, --config PATH     config file or directory (default ${DEFAULT_CONFIG})`;

const USAGE: Record<string, string> = {
  main: `edgemux ${VERSION}: one program on ports 22, 80 and 443 that sends each connection to the
right service: TLS passthrough by SNI, TLS termination with HTTP routing (edge, reencrypt),
SSH and plain TCP forwarding, and http→https redirects.

Usage:
  edgemux run     [-c PATH] [--log-level LEVEL] [--log-format text|json]
  edgemux check   [-c PATH] [--format text|json]
  edgemux routes  [-c PATH]
  edgemux explain [-c PATH] --listener NAME [--protocol P] [--sni NAME] [--alpn ID]
                  [--host HOST] [--path PATH]
  edgemux init    [DIR] [--ports LIST] [--backend ADDR] [--name NAME] [--force]
  edgemux version
  edgemux COMMAND --help

PATH is a YAML file or a directory of *.yaml files (default ${DEFAULT_CONFIG}).
New here? \`edgemux init\` writes a starter config. The config reference is docs/config.md.`,
  run: `Usage: edgemux run [-c PATH] [--log-level LEVEL] [--log-format text|json]

Loads the config, binds every listener and serves until SIGTERM or SIGINT, then stops
gracefully (open connections get shutdown_timeout to finish; a second signal closes them
at once, and exits with status 4 if the process is still there a second later). SIGHUP reloads the config; a config that does not load leaves the running one.

Options:
${CONFIG_HELP}
  --log-level LEVEL     debug, info, warning or error (overrides log.level)
  --log-format FORMAT   text or json (overrides log.format)
  -h, --help            show this help`,
  check: `Usage: edgemux check [-c PATH] [--format text|json]

Validates the config, and the certificates and CA files it names, without binding anything.
Errors and warnings go to standard error, each with file, line, column and key path.
Exit status 0 when the config is valid, 1 when not.

With --format json, one JSON object goes to standard output instead, for editors and CI:
  {"config": PATH, "valid": BOOL, "errors": [ISSUE…], "warnings": [ISSUE…]}
where each ISSUE is {"file", "line", "column", "path", "value", "message", "fix"} ("file",
"line", "column" and "value" are null when the problem has no single place or value).

Options:
${CONFIG_HELP}
  --format FORMAT       text (default) or json
  -h, --help            show this help`,
  routes: `Usage: edgemux routes [-c PATH]

Prints each listener's addresses and routes as edgemux compiled them: what each route
matches and what it does, in the order a connection is matched against them.

Options:
${CONFIG_HELP}
  -h, --help            show this help`,
  explain: `Usage: edgemux explain [-c PATH] --listener NAME [--protocol P] [--sni NAME]
                       [--alpn ID] [--host HOST] [--path PATH]

Says which route a connection to listener NAME would take, and why; for a route that
terminates TLS, also which HTTP route a request for HOST and PATH would take.
Without --protocol, it is tls when --sni or --alpn is given, else the protocol the
listener's routes are written for (tls if any route expects it; http on a listener that
redirects plain HTTP). The server name defaults to HOST.

Options:
${CONFIG_HELP}
  --listener NAME       the listener the connection arrives on (required)
  --protocol P          tls, http, ssh, silent or unknown (default: see above)
  --sni NAME            the server name in the ClientHello
  --alpn ID             an ALPN protocol the client offers (repeatable)
  --host HOST           the HTTP Host of a request
  --path PATH           the HTTP path of a request (default /)
  -h, --help            show this help`,
  init: `Usage: edgemux init [DIR] [--ports LIST] [--backend ADDR] [--name NAME]
                    [--admin ADDR|off] [--system] [--force] [--print]

Writes DIR/edgemux.yaml (DIR defaults to the current directory, and is created if missing): a
commented starter config that is valid as it stands and needs no other file. It serves one web
application as https://NAME with a self-signed development certificate, redirects plain HTTP
to https, and with three ports forwards SSH too. An existing file is left alone unless --force.

Options:
  --ports LIST          HTTP,HTTPS or SSH,HTTP,HTTPS (default ${STARTER_DEFAULTS.ports.http},${STARTER_DEFAULTS.ports.https}; with --system ${SYSTEM_STARTER.ports.http},${SYSTEM_STARTER.ports.https});
                        e.g. 22,80,443 on a server, 2222,8080,8443 without privileges
  --backend ADDR        the web application's host:port (default ${STARTER_DEFAULTS.backend})
  --name NAME           the name it is served under (default ${STARTER_DEFAULTS.name}, which
                        resolves to this machine; with --system ${SYSTEM_STARTER.name})
  --admin ADDR|off      the admin listener (status page, /metrics) (default ${STARTER_DEFAULTS.admin})
  --system              for the systemd service: certificates in /etc/edgemux/certs, development
                        certificates in /var/lib/edgemux/dev-certs
  --force               replace an existing DIR/edgemux.yaml
  --print               write the config to standard output instead
  -h, --help            show this help`,
  version: `Usage: edgemux version

Prints the edgemux version, then the commit it was built from, the Deno version and the
target it was compiled for. Run from source, the commit and target are "dev" and the Deno
version is the one running it.`,
};

class UsageError extends Error {}

interface Flags {
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

function parse(args: string[], command: string): Flags {
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

function parseWithPositionals(
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

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Standard error is journald's stream (computed once; see isJournalStream). */
let journal: boolean | undefined;

/**
 * Writes `text` to standard error. Under journald each line is an entry of its own, so each
 * gets the priority prefix (`<3>` error, `<4>` warning, `<6>` info): `journalctl -p warning`
 * then shows a failed `systemctl reload`'s check output too.
 */
function report(text: string, priority: 3 | 4 | 6): void {
  journal ??= isJournalStream();
  console.error(journal ? text.split("\n").map((l) => `<${priority}>${l}`).join("\n") : text);
}

function printIssues(issues: ConfigIssue[]): void {
  for (const issue of issues) report(formatIssue(issue), issue.severity === "error" ? 3 : 4);
}

/** Loads a config for a command, printing its problems; null when it is invalid. */
async function loadForCommand(path: string, writeDevCert: boolean): Promise<PreparedConfig | null> {
  try {
    return await loadPrepared(path, writeDevCert);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    report(`${path}: invalid (${plural(e.errors.length, "error")})`, 3);
    return null;
  }
}

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
  let issues: ConfigIssue[];
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

async function check(args: string[]): Promise<number> {
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

async function routes(args: string[]): Promise<number> {
  const opts = parse(args, "routes");
  if (opts.help) return help("routes");
  const prepared = await loadForCommand(opts.config ?? DEFAULT_CONFIG, false);
  if (prepared === null) return 1;
  const { config } = prepared;
  for (const l of config.listeners) {
    console.log(`listener ${l.name}  ${l.binds.map(formatHostPort).join(", ")}`);
    l.routes.forEach((r, i) => {
      console.log(
        `  ${String(i).padStart(2)}  ${r.name.padEnd(20)} ${describeMatch(r).padEnd(40)} ${
          describeAction(r)
        }`,
      );
    });
  }
  for (const b of config.backends.values()) {
    const servers = b.servers.map((s) =>
      `${s.label}${s.weight !== 1 ? ` weight ${s.weight}` : ""}${s.backup ? " backup" : ""}`
    );
    console.log(`backend ${b.name}  ${b.balance}  ${servers.join(", ")}${b.tls ? "  (tls)" : ""}`);
  }
  return 0;
}

async function explain(args: string[]): Promise<number> {
  const opts = parse(args, "explain");
  if (opts.help) return help("explain");
  if (opts.listener === undefined) {
    throw new UsageError(`--listener is required\n\n${USAGE.explain}`);
  }
  if (opts.protocol !== undefined && !PROTOCOLS.includes(opts.protocol as Protocol)) {
    throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(", ")}`);
  }
  const prepared = await loadForCommand(opts.config ?? DEFAULT_CONFIG, false);
  if (prepared === null) return 1;
  const listener = prepared.config.listeners.find((l) => l.name === opts.listener);
  if (listener === undefined) {
    console.error(
      `there is no listener "${opts.listener}"; the listeners are ${
        prepared.config.listeners.map((l) => `"${l.name}"`).join(", ")
      }`,
    );
    return 1;
  }
  // A server name or ALPN only exists in a TLS ClientHello; otherwise ask the routes.
  const fromHello = opts.sni !== undefined || opts.alpn !== undefined;
  const protocol: Protocol = (opts.protocol as Protocol | undefined) ??
    (fromHello ? "tls" : inferProtocol(listener));
  if (opts.protocol === undefined && !fromHello) {
    console.log(`(protocol ${protocol}, from the listener's routes; --protocol chooses another)`);
  }
  const lines = explainConnection(listener, {
    protocol,
    sni: opts.sni ?? (protocol === "tls" ? opts.host ?? null : null),
    alpn: opts.alpn ?? [],
    host: opts.host ?? null,
    path: opts.path ?? "/",
    pathNormalization: prepared.config.http.pathNormalization,
  });
  for (const line of lines) console.log(line);
  return 0;
}

/** `edgemux init [DIR]`: writes a starter config (config/starter.ts). */
async function init(args: string[]): Promise<number> {
  const options = {
    help: { type: "boolean", short: "h" },
    ports: { type: "string" },
    backend: { type: "string" },
    name: { type: "string" },
    admin: { type: "string" },
    system: { type: "boolean" },
    force: { type: "boolean" },
    print: { type: "boolean" },
  } as const;
  const { flags, positionals } = parseWithPositionals(args, "init", options, 1);
  if (flags.help) return help("init");
  const base = flags.system ? SYSTEM_STARTER : STARTER_DEFAULTS;
  let ports = base.ports;
  if (flags.ports !== undefined) {
    try {
      ports = parseStarterPorts(flags.ports);
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
  }
  const opts: StarterOptions = {
    ports,
    system: flags.system ?? false,
    backend: flags.backend ?? base.backend,
    name: flags.name?.toLowerCase() ?? base.name,
    admin: flags.admin === "off" ? null : flags.admin ?? base.admin,
  };
  const problem = starterProblem(opts);
  if (problem !== null) throw new UsageError(problem);
  const text = renderStarter(opts);
  if (flags.print) {
    if (positionals.length > 0) {
      throw new UsageError("--print writes to standard output: give no DIR");
    }
    await Deno.stdout.write(new TextEncoder().encode(text));
    return 0;
  }
  const dir = positionals[0] ?? ".";
  const file = `${dir.replace(/\/+$/, "") || "/"}/edgemux.yaml`.replace(/^\/\//, "/");
  const isDirectory = await Deno.stat(dir).then((i) => i.isDirectory, () => null);
  if (isDirectory === false) {
    report(
      `edgemux: ${dir} is not a directory\n  fix: give the directory to write edgemux.yaml in`,
      3,
    );
    return 1;
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
    // createNew refuses an existing file in the same step as creating it: no window in which
    // another file could appear and be overwritten.
    await Deno.writeTextFile(file, text, { createNew: !flags.force, mode: 0o644 });
  } catch (e) {
    const denied = missingPermission(e);
    if (denied !== null) {
      // The compiled binary may write only below /var/lib/edgemux; printing needs no permission.
      report(
        `edgemux: cannot write ${file}: ${denied.message}\n  fix: ${denied.fix}; or print it and ` +
          `redirect: ${starterCommand(opts)} --print > ${file}`,
        3,
      );
      return 1;
    }
    const [problem, fix] = e instanceof Deno.errors.AlreadyExists
      ? ["exists already; it was left as it is", "give --force to replace it, or another DIR"]
      : [
        `cannot be written: ${e instanceof Error ? e.message : String(e)}`,
        "give a DIR that is a directory you may write to",
      ];
    report(`edgemux: ${file} ${problem}\n  fix: ${fix}`, 3);
    return 1;
  }
  const https = ports.https === 443 ? "" : `:${ports.https}`;
  console.log(`wrote ${file}
next:
  edgemux check -c ${file}
  edgemux run -c ${file}
then, in another terminal:
  curl --cacert ${
    dir === "." ? "" : `${dir.replace(/\/+$/, "")}/`
  }.edgemux/dev-certs/development.crt https://${opts.name}${https}/
which answers 502 Bad Gateway until your application listens on ${opts.backend}.`);
  return 0;
}

function help(command: string): number {
  console.log(USAGE[command]);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// run

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
  return await runServer(prepared, flags, worker, Deno.exit);
}

/** `edgemux version`: the version, then the build's values, one `key value` line each. */
function versionText(): string {
  const deno = BUILD_INFO.deno === "dev" ? Deno.version.deno : BUILD_INFO.deno;
  return [
    `edgemux ${VERSION}`,
    `commit  ${BUILD_INFO.commit}`,
    `deno    ${deno}`,
    `target  ${BUILD_INFO.target}`,
  ].join("\n");
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "run":
      return await run(rest);
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
      if (rest.includes("--help") || rest.includes("-h")) return help("version");
      console.log(versionText());
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
