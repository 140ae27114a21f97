/**
 * Every default the config fills in, in one place. `docs/config.md` lists the same values; a
 * test checks that the two agree.
 *
 * @module
 */

export const DEFAULTS = {
  log: { level: "info", format: "text", access: true },
  shutdownTimeout: 30_000,
  http: {
    requestHeadTimeout: 10_000,
    keepaliveTimeout: 60_000,
    maxHeadSize: 32 * 1024,
    maxHeaders: 100,
    trustedProxies: [] as string[],
    pathNormalization: "strict" as const,
  },
  certificates: {
    watchInterval: 5_000,
    developmentDirectory: ".edgemux/dev-certs",
  },
  acme: {
    directory: "https://acme-v02.api.letsencrypt.org/directory",
    challenges: ["http-01", "tls-alpn-01"] as const,
    keyType: "ec-p256",
    stateDirectory: "/var/lib/edgemux/acme",
    retryInterval: 60_000,
  },
  backend: {
    connectTimeout: 5_000,
    proxyProtocol: "off",
    responseTimeout: 60_000,
    balance: "round_robin",
    retries: 2,
    /**
     * `max_connections_per_client` of a backend that a `forward` route uses (others have none):
     * sshd's own `MaxStartups` begins refusing at 10 unauthenticated connections, and it sees
     * every client as edgemux's address.
     */
    forwardMaxConnectionsPerClient: 10,
    weight: 1,
    passive: { failures: 3, backoff: 30_000, on5xx: false },
    healthCheck: {
      interval: 5_000,
      timeout: 2_000,
      rise: 2,
      fall: 3,
      httpMethod: "GET",
      httpPath: "/",
      expect: [200, 399] as [number, number],
    },
  },
  limits: {
    maxConnections: 10_000,
    perClientConnections: 100,
    perClientRate: null,
    perClientBurstFactor: 2,
  },
  listener: {
    sniff: {
      timeout: 5_000,
      silentAfter: 2_000,
      maxHelloSize: 16 * 1024,
    },
    idleTimeout: 3_600_000,
    /** `proxy_protocol.timeout`: a load balancer sends its header with the connection. */
    proxyProtocolTimeout: 3_000,
  },
  redirect: { status: 308 },
  /** An HTTP route's `redirect`: temporary unless the user says otherwise. */
  httpRedirect: { status: 302 as const },
} as const;

/** Bounds that keep a typo from turning into a resource problem. */
export const BOUNDS = {
  /** ClientHellos from current browsers are about 2 KiB; TLS caps a handshake message we accept. */
  maxHelloSize: { min: 512, max: 64 * 1024 },
  /** Deno's own HTTP server refuses heads over 64 KiB, so a larger limit would not hold anyway. */
  maxHeadSize: { min: 1024, max: 64 * 1024 },
  maxHeaders: { min: 8, max: 128 },
} as const;
