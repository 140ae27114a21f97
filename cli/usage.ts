/**
 * The help text: of the program and of each command, as `edgemux COMMAND --help` prints it.
 *
 * @module
 */

import { STARTER_DEFAULTS, SYSTEM_STARTER } from "../config/starter.ts";
import { VERSION } from "../server/process.ts";

/** The config read when no `-c` is given. */
export const DEFAULT_CONFIG = "/etc/edgemux/edgemux.yaml";

const CONFIG_HELP = `  -c, --config PATH     config file or directory (default ${DEFAULT_CONFIG})`;

/** The help text of each command, and of the program (`main`). */
export const USAGE: Record<string, string> = {
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

/** Prints the help of `command` (a key of {@link USAGE}) to standard output; exit code 0. */
export function help(command: string): number {
  console.log(USAGE[command]);
  return 0;
}
