/**
 * The starter config that `edgemux init` writes, and that the Debian package and install.sh
 * install as /etc/edgemux/edgemux.yaml (deploy/starter.yaml is `edgemux init --system --ports
 * 80,443 --print`; config/starter_test.ts checks that they agree). It must be valid as written,
 * with nothing beside it: no certificate, CA file or repository.
 *
 * @module
 */

/** The listener ports of a starter config. */
export interface StarterPorts {
  /** SSH forwarded to sshd; `null` for none. */
  ssh: number | null;
  /** Plain HTTP, redirected to https. */
  http: number;
  /** TLS, terminated for the one web application. */
  https: number;
}

/** What to write. */
export interface StarterOptions {
  ports: StarterPorts;
  /**
   * For the systemd service: certificates in /etc/edgemux/certs and development certificates
   * in /var/lib/edgemux/dev-certs (the one directory the unit lets it write). Otherwise the
   * development certificate is kept beside the config and no certificate directory is named.
   */
  system: boolean;
  /** The web application's address, `host:port`. */
  backend: string;
  /** The server name it is served under. */
  name: string;
  /** The admin listener's bind address, or `null` for none. */
  admin: string | null;
}

/** The SSH server edgemux forwards to when it takes port 22 itself (sshd moves there). */
export const MOVED_SSHD = "127.0.0.1:10022";

/** The defaults of `edgemux init` (without `--system`): unprivileged ports, a local name. */
export const STARTER_DEFAULTS: StarterOptions = {
  ports: { ssh: null, http: 8080, https: 8443 },
  system: false,
  backend: "127.0.0.1:3000",
  // Names under .localhost resolve to the loopback address in browsers and curl (RFC 6761
  // §6.3), so the first request needs no DNS or /etc/hosts entry.
  name: "app.localhost",
  admin: "127.0.0.1:9901",
};

/** The options deploy/starter.yaml is made with. */
export const SYSTEM_STARTER: StarterOptions = {
  ports: { ssh: null, http: 80, https: 443 },
  system: true,
  backend: "127.0.0.1:3000",
  name: "app.example.com",
  admin: "127.0.0.1:9901",
};

/**
 * Reads a `--ports` value: `HTTP,HTTPS` or `SSH,HTTP,HTTPS`, each 1 to 65535 and all different.
 *
 * @throws {RangeError} naming what is wrong.
 */
export function parseStarterPorts(text: string): StarterPorts {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length !== 2 && parts.length !== 3) {
    throw new RangeError(
      `--ports takes HTTP,HTTPS or SSH,HTTP,HTTPS (e.g. 80,443 or 22,80,443), not "${text}"`,
    );
  }
  const ports = parts.map((p) => {
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw new RangeError(`--ports: "${p}" is not a port number from 1 to 65535`);
    }
    return n;
  });
  if (new Set(ports).size !== ports.length) {
    throw new RangeError(`--ports: "${text}" names a port twice; each listener needs its own`);
  }
  return ports.length === 3
    ? { ssh: ports[0], http: ports[1], https: ports[2] }
    : { ssh: null, http: ports[0], https: ports[1] };
}

/** The port of a `host:port` or `[v6]:port` address, or null. */
function portOf(address: string): number | null {
  const m = /:(\d{1,5})$/.exec(address);
  return m ? Number(m[1]) : null;
}

/** The command line that writes the config `opts` describes (for its header). */
export function starterCommand(opts: StarterOptions): string {
  const { ssh, http, https } = opts.ports;
  const args = ["edgemux init"];
  if (opts.system) args.push("--system");
  args.push(`--ports ${ssh === null ? "" : `${ssh},`}${http},${https}`);
  const defaults = opts.system ? SYSTEM_STARTER : STARTER_DEFAULTS;
  if (opts.backend !== defaults.backend) args.push(`--backend ${opts.backend}`);
  if (opts.name !== defaults.name) args.push(`--name ${opts.name}`);
  if (opts.admin !== defaults.admin) args.push(`--admin ${opts.admin ?? "off"}`);
  return args.join(" ");
}

/**
 * Why `opts` cannot make a working config, or null. The backend must not be one of edgemux's
 * own ports, or every request would come back to edgemux.
 */
export function starterProblem(opts: StarterOptions): string | null {
  const { ssh, http, https } = opts.ports;
  const own = [ssh, http, https].filter((p): p is number => p !== null);
  const backendPort = portOf(opts.backend);
  if (backendPort === null) return `--backend must be host:port, not "${opts.backend}"`;
  if (own.includes(backendPort)) {
    return `--backend ${opts.backend} uses port ${backendPort}, which edgemux itself listens ` +
      "on; give the application's own port";
  }
  if (opts.admin !== null) {
    const adminPort = portOf(opts.admin);
    if (adminPort === null) return `--admin must be host:port or off, not "${opts.admin}"`;
    if (adminPort !== 0 && own.includes(adminPort)) {
      return `--admin ${opts.admin} uses port ${adminPort}, which a listener uses`;
    }
  }
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(opts.name)) {
    return `--name must be a lowercase DNS name such as app.example.com, not "${opts.name}"`;
  }
  return null;
}

/** The starter config as YAML text, with comments. */
export function renderStarter(opts: StarterOptions): string {
  const { ssh, http, https } = opts.ports;
  const sshd = ssh === 22 ? MOVED_SSHD : "127.0.0.1:22";
  const self = opts.system ? "/etc/edgemux/edgemux.yaml" : "edgemux.yaml";
  const httpsUrl = `https://${opts.name}${https === 443 ? "" : `:${https}`}/`;
  const lines: string[] = [];
  const add = (...more: string[]) => lines.push(...more);

  add(`# edgemux starter config, written by \`${starterCommand(opts)}\`.`);
  if (opts.system) {
    add(
      "# The Debian package and install.sh install it as /etc/edgemux/edgemux.yaml when no config",
      "# is there yet.",
    );
  }
  add(
    "#",
    "# It is valid as it stands and needs no other file: it serves one web application on",
    `# ${opts.backend} as ${httpsUrl} and redirects plain HTTP on port ${http} to https` +
      (ssh === null ? "." : ","),
  );
  if (ssh !== null) add(`# and forwards SSH on port ${ssh} to the SSH server on ${sshd}.`);
  add(
    `# Until something answers on ${opts.backend}, https requests get 502 Bad Gateway.`,
    "#",
    `# Next: put your service's address in place of ${opts.backend} and your own name in place`,
    `# of ${opts.name}, then`,
    `#   edgemux check -c ${self}`,
    opts.system ? "#   systemctl enable --now edgemux" : `#   edgemux run -c ${self}`,
    opts.system
      ? "# Reference: docs/config.md. A bigger example (ssh on 22, passthrough, reencrypt):\n" +
        "# deploy/edgemux.yaml."
      : "# Reference: docs/config.md.",
    "version: 1",
    "",
    "log:",
    "  level: info",
    opts.system
      ? "  format: text # logfmt; journald adds the time and unit; `json` for a log pipeline"
      : "  format: text # logfmt; `json` for a log pipeline",
    "",
  );
  if (opts.system) {
    add("# Open connections get this long to finish on `systemctl stop` (TimeoutStopSec is 35s).");
  } else {
    add("# Open connections get this long to finish when edgemux stops (SIGTERM or Ctrl-C).");
  }
  add("shutdown_timeout: 30s", "");
  if (opts.admin !== null) {
    add(
      "# /metrics, /healthz, /readyz and a status page, on loopback only.",
      "admin:",
      `  bind: "${opts.admin}"`,
      "",
    );
  }
  add(
    "certificates:",
    "  # Real certificates: NAME.pem (chain and key), NAME.crt + NAME.key, or certbot's",
  );
  if (opts.system) {
    add(
      "  # live/DOMAIN/ folders. Keys must be readable by the group edgemux (root:edgemux, 0640).",
      "  directory: /etc/edgemux/certs",
      "  # Until a real certificate covers a name, edgemux makes a self-signed one for it (browsers",
      "  # warn). The service may write only below /var/lib/edgemux. Remove this line once every name",
      "  # has a real certificate.",
      "  development: { directory: /var/lib/edgemux/dev-certs }",
    );
  } else {
    add(
      "  # live/DOMAIN/ folders, in a directory (it must exist):",
      "  # directory: certs",
      "  # Until a real certificate covers a name, edgemux makes a self-signed one for it, kept in",
      "  # .edgemux/dev-certs/development.crt beside this file. Browsers warn about it; curl trusts",
      "  # it with --cacert .edgemux/dev-certs/development.crt, and",
      "  #   openssl x509 -in .edgemux/dev-certs/development.crt -noout -subject -ext subjectAltName",
      "  # shows what it covers. Remove this line once every name has a real certificate.",
      "  development: true",
    );
  }
  add("", "backends:", "  app:", `    servers: ["${opts.backend}"]`);
  if (ssh !== null) {
    add("  ssh:");
    if (ssh === 22) {
      add(
        "    # edgemux takes port 22: move sshd here (sshd_config: ListenAddress 127.0.0.1:10022).",
      );
    }
    add(`    servers: ["${sshd}"]`);
  }
  add("", "listeners:");
  if (ssh !== null) {
    add("  ssh:", `    bind: "[::]:${ssh}"`, "    routes:", "      - forward: ssh");
  }
  add(
    "  http:",
    `    bind: "[::]:${http}"`,
    "    routes:",
    `      - redirect: https # to the https listener's port (${https})`,
    "  https:",
    `    bind: "[::]:${https}"`,
    "    routes:",
    `      - sni: ${opts.name}`,
    "        edge: app",
  );
  return lines.join("\n") + "\n";
}
