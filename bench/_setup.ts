/**
 * Everything the benchmark stands up: the backends (one nginx with several server blocks, an
 * iperf3 server, two sparse download files), HAProxy 2.6 as the layered setup edgemux
 * replaces, and edgemux itself, both configured with the same topology. All on 127.0.0.1.
 *
 * @module
 */

import { runCommand, type Server, sleep, startServer, waitForPort } from "./_proc.ts";

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
// The proxies

/** Ports of one proxy's listeners. */
export interface ProxyPorts {
  /** TCP forward to iperf3. */
  fwd: number;
  /** TCP forward to nginx's plain HTTP port (for the idle-connection memory test). */
  fwdHttp: number;
  /** Plain HTTP ("port 80"): 308 to https. */
  http: number;
  /** TLS ("port 443"): passthrough, edge and reencrypt by SNI. */
  https: number;
}

/** A running proxy. */
export interface Proxy {
  readonly kind: "haproxy" | "edgemux";
  readonly server: Server;
  readonly ports: ProxyPorts;
  /** The config file it runs on. */
  readonly configFile: string;
  /** Where edgemux writes its CPU profile when it exits (with `--cpu-prof`). */
  readonly profileFile?: string;
  stop(): Promise<void>;
}

/** Options for {@linkcode startProxy}. */
export interface ProxyOptions {
  dir: string;
  backends: BackendPorts;
  /** A label for the files this instance writes (config, profile). */
  label: string;
  /** edgemux only: run under `--cpu-prof`. */
  cpuProf?: boolean;
}

/**
 * HAProxy 2.6 as the layered multiplexer: a `mode tcp` frontend on "443" routes by
 * `req.ssl_sni`, passes passthrough names to their backend and hands terminated names (with a
 * PROXY v2 header) to a loopback `mode http` frontend that ends TLS and proxies HTTP.
 */
export function haproxyConfig(
  ports: ProxyPorts,
  inner: number,
  backends: BackendPorts,
  crtDir: string,
): string {
  return `# Generated by bench/_setup.ts: the layered HAProxy setup edgemux replaces.
global
  nbthread 1
  # Room for the memory scenario: 5,000 held edge connections count twice (the "443"
  # frontend and the terminating hop) and take three descriptors each. HAProxy wants
  # 2 x maxconn descriptors, more than the hard limit here (20,000, which it cannot raise);
  # "no strict-limits" makes that a warning: the 15,000 descriptors really used still fit.
  maxconn 20000
  no strict-limits
  ssl-server-verify required

defaults
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  timeout http-request 5m
  timeout http-keep-alive 5m
  timeout tunnel 1h
  maxconn 20000

# "port 22"-style TCP forwards.
frontend fwd
  mode tcp
  bind 127.0.0.1:${ports.fwd}
  default_backend iperf

frontend fwd_http
  mode tcp
  bind 127.0.0.1:${ports.fwdHttp}
  default_backend plain_tcp

# "port 443": read the ClientHello, route by SNI. The first rule waits (up to inspect-delay)
# until the server name can be read, so a hello that arrives slowly or in several records is
# not routed on a partial read; the second takes TLS clients that send no server name.
frontend tls
  mode tcp
  bind 127.0.0.1:${ports.https}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_sni -m found }
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend passthrough_vault if { req.ssl_sni -i ${NAMES.passthrough} }
  use_backend terminate if { req.ssl_sni -i ${NAMES.edge} ${NAMES.reencrypt} }

backend passthrough_vault
  mode tcp
  server vault 127.0.0.1:${backends.vault}

backend terminate
  mode tcp
  server inner 127.0.0.1:${inner} send-proxy-v2

# The terminating hop: TLS ends here (certificate by SNI), then HTTP.
frontend https_inner
  mode http
  bind 127.0.0.1:${inner} ssl crt ${crtDir} alpn h2,http/1.1 accept-proxy
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header Forwarded "for=%[src];proto=https;host=%[req.hdr(host)]"
  use_backend reencrypt_internal if { ssl_fc_sni -i ${NAMES.reencrypt} }
  default_backend edge_plain

backend edge_plain
  mode http
  server plain 127.0.0.1:${backends.plain}

backend reencrypt_internal
  mode http
  server internal 127.0.0.1:${backends.internal} ssl verify required ca-file ${CA_FILE} sni str(${NAMES.internal}) verifyhost ${NAMES.internal} alpn http/1.1

backend iperf
  mode tcp
  server iperf 127.0.0.1:${backends.iperf}

backend plain_tcp
  mode tcp
  server plain 127.0.0.1:${backends.plain}

# "port 80": everything to https. redirect scheme keeps the Host header's port, so the port
# is replaced by the TLS frontend's first.
frontend http
  mode http
  bind 127.0.0.1:${ports.http}
  http-request set-header Host %[req.hdr(host),field(1,:)]:${ports.https}
  http-request redirect scheme https code 308
`;
}

/** The same topology as an edgemux config. */
export function edgemuxConfig(ports: ProxyPorts, backends: BackendPorts): string {
  const p = cert("prometheus");
  const w = cert("edge-wildcard");
  return `# Generated by bench/_setup.ts: the same topology as the HAProxy config.
version: 1
shutdown_timeout: 1s
log:
  level: warning
  access: false
limits:
  max_connections: 100000
  per_client:
    max_connections: 100000
http:
  keepalive_timeout: 5m
  request_head_timeout: 5m
certificates:
  files:
    - { cert: ${p.cert}, key: ${p.key} }
    - { cert: ${w.cert}, key: ${w.key} }
  watch_interval: 0
backends:
  iperf:
    servers: ["127.0.0.1:${backends.iperf}"]
    max_connections_per_client: none
  plain:
    servers: ["127.0.0.1:${backends.plain}"]
    max_connections_per_client: none
  vault:
    servers: ["127.0.0.1:${backends.vault}"]
  internal:
    servers: ["127.0.0.1:${backends.internal}"]
    tls:
      ca: ${CA_FILE}
      server_name: ${NAMES.internal}
listeners:
  fwd:
    bind: "127.0.0.1:${ports.fwd}"
    routes:
      - forward: iperf
  fwd-http:
    bind: "127.0.0.1:${ports.fwdHttp}"
    routes:
      - forward: plain
  http:
    bind: "127.0.0.1:${ports.http}"
    routes:
      - redirect: https
  https:
    bind: "127.0.0.1:${ports.https}"
    sniff:
      timeout: 5s
    routes:
      - name: vault
        sni: ${NAMES.passthrough}
        passthrough: vault
      - name: prometheus
        sni: ${NAMES.edge}
        edge: plain
      - name: grafana
        sni: ${NAMES.reencrypt}
        reencrypt: internal
`;
}

async function haproxyCertDir(dir: string): Promise<string> {
  const crtDir = `${dir}/haproxy-certs`;
  await Deno.mkdir(crtDir, { recursive: true });
  for (const name of ["prometheus", "edge-wildcard"]) {
    const c = cert(name);
    const pem = (await Deno.readTextFile(c.cert)).trimEnd() + "\n" +
      (await Deno.readTextFile(c.key)).trimEnd() + "\n";
    await Deno.writeTextFile(`${crtDir}/${name}.pem`, pem);
  }
  return crtDir;
}

/** Starts a fresh HAProxy or edgemux and waits until every listener accepts connections. */
export async function startProxy(
  kind: "haproxy" | "edgemux",
  opts: ProxyOptions,
): Promise<Proxy> {
  const [fwd, fwdHttp, http, https, inner] = pickPorts(5);
  const ports: ProxyPorts = { fwd, fwdHttp, http, https };
  let server: Server;
  let configFile: string;
  let profileFile: string | undefined;
  if (kind === "haproxy") {
    const crtDir = await haproxyCertDir(opts.dir);
    configFile = `${opts.dir}/haproxy-${opts.label}.cfg`;
    await Deno.writeTextFile(configFile, haproxyConfig(ports, inner, opts.backends, crtDir));
    server = startServer("haproxy", ["haproxy", "-f", configFile, "-db"]);
  } else {
    configFile = `${opts.dir}/edgemux-${opts.label}.yaml`;
    await Deno.writeTextFile(configFile, edgemuxConfig(ports, opts.backends));
    const prof: string[] = [];
    if (opts.cpuProf) {
      const profDir = `${opts.dir}/profiles`;
      await Deno.mkdir(profDir, { recursive: true });
      profileFile = `${profDir}/edgemux-${opts.label}.cpuprofile`;
      prof.push(
        "--cpu-prof",
        `--cpu-prof-dir=${profDir}`,
        `--cpu-prof-name=edgemux-${opts.label}.cpuprofile`,
      );
    }
    server = startServer("edgemux", [
      Deno.execPath(),
      "run",
      "-A",
      ...prof,
      "main.ts",
      "run",
      "-c",
      configFile,
      "--log-level",
      "warning",
    ], { cwd: REPO_ROOT });
  }
  const stop = () => server.stop("SIGTERM");
  try {
    for (const port of [fwd, fwdHttp, http, https]) await waitForPort(port, server, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { kind, server, ports, configFile, profileFile, stop };
}

// ---------------------------------------------------------------------------------------------
// A real ClientHello for the passthrough name

/**
 * Captures the ClientHello `openssl s_client` sends for `serverName` (a real one, with a valid
 * key share, so the passthrough backend answers it), by listening on a loopback port.
 */
export async function captureClientHello(serverName: string): Promise<Uint8Array> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const captured = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(65536);
    let len = 0;
    try {
      // Read records until their payloads hold the whole handshake message: a 4-byte header
      // (type 1, 24-bit length at bytes 6..8 of the first record) and its body.
      while (true) {
        const n = await conn.read(buf.subarray(len));
        if (n === null) break;
        len += n;
        if (len < 9) continue;
        const want = 4 + ((buf[6] << 16) | (buf[7] << 8) | buf[8]);
        let have = 0;
        for (let off = 0; off + 5 <= len;) {
          const rec = (buf[off + 3] << 8) | buf[off + 4];
          have += Math.min(rec, len - off - 5);
          off += 5 + rec;
        }
        if (have >= want) break;
      }
    } finally {
      conn.close();
    }
    return buf.slice(0, len);
  })();
  try {
    await runCommand([
      "openssl",
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      serverName,
      "-alpn",
      "http/1.1",
    ], { timeoutMs: 10_000 });
    const hello = await captured;
    if (hello.length < 50 || hello[0] !== 0x16 || hello[5] !== 0x01) {
      throw new Error(`openssl did not send a ClientHello (${hello.length} bytes captured)`);
    }
    return hello;
  } finally {
    listener.close();
  }
}
