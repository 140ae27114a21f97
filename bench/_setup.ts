/**
 * What every proxy in the benchmark shares: the server names, ports, certificates, the backends
 * (one nginx with several server blocks, an iperf3 server, two sparse download files), the
 * private hosts file for wrk and ab, and captured ClientHellos. The proxies themselves are in
 * ./_proxies.ts. All on 127.0.0.1.
 *
 * @module
 */

import { runCommand, type Server, sleep, startServer, waitForPort } from "./_proc.ts";
import { replaceExtension, serverNameData } from "../proxy/_testing/hello_builder.ts";

/** TLS extension type of server_name (RFC 6066 §3). */
const EXT_SERVER_NAME = 0;

/** The repository root (the parent of bench/). */
export const REPO_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CERTS = `${REPO_ROOT}/testdata/certs`;

/** The server names of the topology. Every one resolves to 127.0.0.1 for the load tools. */
export const NAMES = {
  /** A passthrough route: TLS relayed untouched to nginx, which holds vault.pem. */
  passthrough: "vault.example.test",
  /** An edge route: TLS ends at the proxy, plain HTTP to nginx. */
  edge: "prometheus.example.test",
  /** A reencrypt route: TLS ends at the proxy, a new TLS connection to nginx. */
  reencrypt: "grafana.example.test",
  /** The name in the reencrypt backend's certificate (for the direct baseline). */
  internal: "backend.internal",
  /** The host clients ask for on the plain-HTTP (port 80) listener. */
  redirect: "www.example.test",
} as const;

/** The plain-HTTP redirect target port nginx writes when measured directly. */
export const DIRECT_REDIRECT_HTTPS_PORT = 8443;

/** Bodies the backends answer with, so that a check can tell a real answer from an error. */
export const BODIES = {
  plain: "edgemux bench: plain\n",
  vault: "edgemux bench: vault\n",
  internal: "edgemux bench: internal\n",
} as const;

/** Paths of the download files (sparse, so they cost no disk). */
export const FILES = { big: "/big-1g.bin", small: "/big-256m.bin" } as const;
export const FILE_SIZES = { big: 1024 ** 3, small: 256 * 1024 ** 2 } as const;

/** Paths of a certificate and its key in testdata/certs. */
export function cert(name: string): { cert: string; key: string } {
  return { cert: `${CERTS}/${name}.pem`, key: `${CERTS}/${name}.key` };
}
/** The CA that signed every test certificate. */
export const CA_FILE = `${CERTS}/ca.pem`;

const usedPorts = new Set<number>();

/**
 * Picks `n` free loopback ports in 20000–31999: below the ephemeral range (32768–60999), so a
 * load tool's outgoing connections never take one, and checked by binding each.
 */
export function pickPorts(n: number): number[] {
  const out: number[] = [];
  while (out.length < n) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (usedPorts.has(port)) continue;
    try {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      l.close();
    } catch {
      continue;
    }
    usedPorts.add(port);
    out.push(port);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Names for wrk and ab

/**
 * wrk and ab take the server name (SNI, Host) from the URL and resolve it themselves; neither
 * has curl's `--resolve`. So each runs in a private mount namespace where a bind-mounted hosts
 * file maps the topology's names to 127.0.0.1. The machine's /etc/hosts is never changed and
 * nothing else sees the mount. Needs root (or CAP_SYS_ADMIN) and util-linux `unshare`.
 */
export class NameResolver {
  readonly hostsFile: string;
  constructor(dir: string) {
    this.hostsFile = `${dir}/hosts`;
  }

  async init(): Promise<void> {
    const lines = ["127.0.0.1 localhost", `127.0.0.1 ${Object.values(NAMES).join(" ")}`];
    await Deno.writeTextFile(this.hostsFile, lines.join("\n") + "\n");
    const probe = await runCommand(this.wrap(["getent", "hosts", NAMES.edge]), {
      timeoutMs: 10_000,
    });
    if (probe.code !== 0 || !probe.stdout.includes("127.0.0.1")) {
      throw new Error(
        "Cannot give wrk and ab the benchmark's host names: `unshare --mount` with a bind-mounted " +
          `hosts file failed (exit ${probe.code}): ${probe.stderr.trim()}\n` +
          "  fix: run the benchmark as root (it needs CAP_SYS_ADMIN for a private mount namespace)",
      );
    }
  }

  /** `argv`, run in a private mount namespace that resolves the topology's names. */
  wrap(argv: readonly string[]): string[] {
    return [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /etc/hosts && exec "$@"',
      this.hostsFile,
      ...argv,
    ];
  }
}

// ---------------------------------------------------------------------------------------------
// Backends

async function waitForOutput(server: Server, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!server.output().includes(text)) {
    if (server.exited() || Date.now() > deadline) {
      throw new Error(`${server.name} did not print "${text}":\n${server.output()}`);
    }
    await sleep(50);
  }
}

/** Ports of the backends (and of the direct baselines). */
export interface BackendPorts {
  /** nginx, plain HTTP: the edge and forward backend. */
  plain: number;
  /** nginx, TLS with vault.pem: the passthrough backend; also serves the download files. */
  vault: number;
  /** nginx, TLS with backend-internal.pem: the reencrypt backend. */
  internal: number;
  /** nginx, TLS with prometheus.pem, h2 and http/1.1: the direct baseline for edge routes. */
  edgeDirect: number;
  /** nginx, plain HTTP answering 308 to https: the direct baseline for redirects. */
  redirectDirect: number;
  /** iperf3 -s. */
  iperf: number;
}

/** The running backends. */
export interface Backends {
  ports: BackendPorts;
  nginx: Server;
  iperf: Server;
  stop(): Promise<void>;
}

function nginxConf(dir: string, p: BackendPorts): string {
  const user = Deno.uid() === 0 ? "user root;" : "";
  const tls = (name: string) =>
    `ssl_certificate ${cert(name).cert}; ssl_certificate_key ${cert(name).key};`;
  return `# Generated by bench/_setup.ts
daemon off;
${user}
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 19000; }
http {
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  access_log off;
  default_type text/plain;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:${p.plain};
    location / { return 200 "${BODIES.plain.trim()}\\n"; }
  }
  server {
    listen 127.0.0.1:${p.vault} ssl;
    ${tls("vault")}
    root ${dir}/www;
    location = / { return 200 "${BODIES.vault.trim()}\\n"; }
  }
  server {
    listen 127.0.0.1:${p.internal} ssl;
    ${tls("backend-internal")}
    location / { return 200 "${BODIES.internal.trim()}\\n"; }
  }
  server {
    listen 127.0.0.1:${p.edgeDirect} ssl http2;
    ${tls("prometheus")}
    location / { return 200 "${BODIES.plain.trim()}\\n"; }
  }
  server {
    listen 127.0.0.1:${p.redirectDirect};
    location / { return 308 https://$host:${DIRECT_REDIRECT_HTTPS_PORT}$request_uri; }
  }
}
`;
}

/** Starts nginx (every HTTP backend) and iperf3 in `dir`. */
export async function startBackends(dir: string): Promise<Backends> {
  const [plain, vault, internal, edgeDirect, redirectDirect, iperfPort] = pickPorts(6);
  const ports: BackendPorts = {
    plain,
    vault,
    internal,
    edgeDirect,
    redirectDirect,
    iperf: iperfPort,
  };
  const ngx = `${dir}/nginx`;
  await Deno.mkdir(`${ngx}/www`, { recursive: true });
  for (const [key, path] of Object.entries(FILES) as [keyof typeof FILES, string][]) {
    using f = await Deno.open(`${ngx}/www${path}`, { create: true, write: true, truncate: true });
    await f.truncate(FILE_SIZES[key]);
  }
  await Deno.writeTextFile(`${ngx}/nginx.conf`, nginxConf(ngx, ports));
  const nginx = startServer("nginx", [
    "nginx",
    "-p",
    `${ngx}/`,
    "-e",
    "stderr",
    "-c",
    `${ngx}/nginx.conf`,
  ]);
  const iperf = startServer("iperf3", [
    "iperf3",
    "-s",
    "-B",
    "127.0.0.1",
    "-p",
    String(iperfPort),
    "--forceflush",
  ]);
  const stop = async () => {
    await Promise.all([nginx.stop(), iperf.stop()]);
  };
  try {
    for (const port of [plain, vault, internal, edgeDirect, redirectDirect]) {
      await waitForPort(port, nginx, 10_000);
    }
    // Not waitForPort: iperf3 takes any connection for a test's control connection, and a
    // probe that closes at once leaves it failing the next real test.
    await waitForOutput(iperf, "Server listening", 10_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { ports, nginx, iperf, stop };
}

// ---------------------------------------------------------------------------------------------
// A browser's ClientHello for the held-connection scenarios

/**
 * The ClientHello headless Chromium sent (testdata/hellos/chromium.bin, 2,020 bytes with its
 * post-quantum key share), with its server name replaced by `serverName`. A browser's hello is
 * what a public proxy mostly sees, and its size matters: the server's answer to it (a larger
 * first flight) decides how much a proxy holds while it waits for the client's next flight.
 * openssl's smaller hello understated edgemux's held cost by a factor of five before the relay's
 * buffer ladder (docs/deno-runtime.md).
 */
export async function browserClientHello(serverName: string): Promise<Uint8Array> {
  const recorded = await Deno.readFile(`${REPO_ROOT}/testdata/hellos/chromium.bin`);
  return replaceExtension(recorded, EXT_SERVER_NAME, serverNameData(serverName));
}
