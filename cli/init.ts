/**
 * `edgemux init [DIR]`: writes a starter config (config/starter.ts), or prints it.
 *
 * @module
 */

import { missingPermission } from "../config/permission.ts";
import {
  parseStarterPorts,
  renderStarter,
  STARTER_DEFAULTS,
  starterCommand,
  type StarterOptions,
  starterProblem,
  SYSTEM_STARTER,
} from "../config/starter.ts";
import { parseWithPositionals, UsageError } from "./flags.ts";
import { report } from "./output.ts";
import { help } from "./usage.ts";

/** `edgemux init [DIR]`: writes a starter config (config/starter.ts). */
export async function init(args: string[]): Promise<number> {
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
