/**
 * The server half of a TLS 1.3 handshake (RFC 8446), just far enough to show a TLS-ALPN-01
 * validator the challenge certificate (RFC 8737 §3).
 *
 * Why not Deno's TLS: the challenge certificate must carry the acmeIdentifier extension
 * (1.3.6.1.5.5.7.1.31) marked critical, and Deno's TLS library (rustls) parses its own
 * certificate before serving it and refuses any critical extension it does not know
 * (`UnsupportedCriticalExtension`), in `Deno.listenTls`, its SNI resolver and `node:tls`
 * alike. CAs (Let's Encrypt's Boulder) reject the extension when it is not critical.
 *
 * What is done: one cipher suite (TLS_AES_128_GCM_SHA256, which every TLS 1.3 client offers,
 * RFC 8446 §9.1), one key exchange (X25519), one signature scheme (ecdsa_secp256r1_sha256,
 * so the challenge key is P-256). The server sends ServerHello, then encrypted
 * EncryptedExtensions (ALPN `acme-tls/1`), Certificate, CertificateVerify and Finished. Nothing
 * is ever sent or read under the application keys: a validator only looks at the certificate
 * and closes, so the client's Finished is not checked. A client that offers no X25519 share or
 * not TLS 1.3 gets a `handshake_failure` alert.
 *
 * @module
 */

import {
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  sign,
} from "node:crypto";
import { Buffer } from "node:buffer";

const TLS13 = 0x0304;
const AES_128_GCM_SHA256 = 0x1301;
const X25519 = 0x001d;
const ECDSA_P256_SHA256 = 0x0403;
const EXT = {
  alpn: 0x0010,
  signatureAlgorithms: 0x000d,
  supportedVersions: 0x002b,
  keyShare: 0x0033,
};

/** What the ClientHello offers that this server needs. */
export interface ClientHelloOffer {
  /** The whole handshake message (type, length, body), for the transcript. */
  message: Uint8Array;
  sessionId: Uint8Array;
  /** The client's X25519 public key, or null when it sent no X25519 share. */
  x25519: Uint8Array | null;
  tls13: boolean;
  aes128gcm: boolean;
  ecdsaP256: boolean;
}

/**
 * Reads the ClientHello out of the TLS records in `bytes`, which may split it over several.
 *
 * @returns the offer, or null when the bytes hold no complete, well-formed ClientHello
 */
export function parseClientHello(bytes: Uint8Array): ClientHelloOffer | null {
  // Join the handshake records' payloads (RFC 8446 §5.1).
  const parts: Uint8Array[] = [];
  let at = 0;
  let total = 0;
  while (at + 5 <= bytes.length && bytes[at] === 22) {
    const len = (bytes[at + 3] << 8) | bytes[at + 4];
    if (at + 5 + len > bytes.length) break;
    parts.push(bytes.subarray(at + 5, at + 5 + len));
    total += len;
    at += 5 + len;
  }
  const hs = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    hs.set(p, o);
    o += p.length;
  }
  if (hs.length < 4 || hs[0] !== 1) return null;
  const bodyLen = (hs[1] << 16) | (hs[2] << 8) | hs[3];
  if (hs.length < 4 + bodyLen) return null;
  const message = hs.slice(0, 4 + bodyLen);
  const r = new Reader(message.subarray(4));
  try {
    r.skip(2 + 32); // legacy_version, random
    const sessionId = r.vector(1);
    const suites = r.vector(2);
    r.vector(1); // compression methods
    const offer: ClientHelloOffer = {
      message,
      sessionId: sessionId.slice(),
      x25519: null,
      tls13: false,
      aes128gcm: false,
      ecdsaP256: false,
    };
    for (let i = 0; i + 1 < suites.length; i += 2) {
      if (((suites[i] << 8) | suites[i + 1]) === AES_128_GCM_SHA256) offer.aes128gcm = true;
    }
    if (r.left === 0) return offer;
    const exts = new Reader(r.vector(2));
    while (exts.left > 0) {
      const type = exts.u16();
      const data = new Reader(exts.vector(2));
      if (type === EXT.supportedVersions) {
        const list = data.vector(1);
        for (let i = 0; i + 1 < list.length; i += 2) {
          if (((list[i] << 8) | list[i + 1]) === TLS13) offer.tls13 = true;
        }
      } else if (type === EXT.keyShare) {
        const shares = new Reader(data.vector(2));
        while (shares.left > 0) {
          const group = shares.u16();
          const key = shares.vector(2);
          if (group === X25519 && key.length === 32) offer.x25519 = key.slice();
        }
      } else if (type === EXT.signatureAlgorithms) {
        const list = data.vector(2);
        for (let i = 0; i + 1 < list.length; i += 2) {
          if (((list[i] << 8) | list[i + 1]) === ECDSA_P256_SHA256) offer.ecdsaP256 = true;
        }
      }
    }
    return offer;
  } catch {
    return null;
  }
}

class Reader {
  #at = 0;
  constructor(readonly bytes: Uint8Array) {}
  get left(): number {
    return this.bytes.length - this.#at;
  }
  skip(n: number): void {
    if (n > this.left) throw new RangeError("truncated");
    this.#at += n;
  }
  u16(): number {
    const b = this.take(2);
    return (b[0] << 8) | b[1];
  }
  take(n: number): Uint8Array {
    if (n > this.left) throw new RangeError("truncated");
    const out = this.bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
  /** A vector with a `lengthBytes`-byte length prefix. */
  vector(lengthBytes: 1 | 2 | 3): Uint8Array {
    let n = 0;
    for (const b of this.take(lengthBytes)) n = (n << 8) | b;
    return this.take(n);
  }
}

function u8(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff);
}
function u16(n: number): Uint8Array {
  return Uint8Array.of((n >> 8) & 0xff, n & 0xff);
}
function u24(n: number): Uint8Array {
  return Uint8Array.of((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}
function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}
function vec(lengthBytes: 1 | 2 | 3, data: Uint8Array): Uint8Array {
  const len = lengthBytes === 1
    ? u8(data.length)
    : lengthBytes === 2
    ? u16(data.length)
    : u24(data.length);
  return cat(len, data);
}
function handshake(type: number, body: Uint8Array): Uint8Array {
  return cat(u8(type), u24(body.length), body);
}
function ext(type: number, data: Uint8Array): Uint8Array {
  return cat(u16(type), vec(2, data));
}

function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}
function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}
/** HKDF-Expand-Label (RFC 8446 §7.1); every output here fits one SHA-256 block. */
function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number) {
  const info = cat(
    u16(length),
    vec(1, new TextEncoder().encode(`tls13 ${label}`)),
    vec(1, context),
  );
  return hmac(secret, cat(info, u8(1))).slice(0, length);
}

/** PEM certificates to DER, leaf first. */
function pemToDer(pem: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    out.push(new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ""), "base64")));
  }
  return out;
}

/** The handshake_failure alert (RFC 8446 §6), sent when the client offers nothing usable. */
export const HANDSHAKE_FAILURE_ALERT: Uint8Array = Uint8Array.of(21, 3, 3, 0, 2, 2, 40);

/**
 * The server's whole first flight for `offer`, answering with `certPem` (a P-256 certificate)
 * and `keyPem`, negotiating `alpn`.
 *
 * @returns the bytes to send, or null when the client offers nothing this server speaks
 */
export function serverFlight(
  offer: ClientHelloOffer,
  certPem: string,
  keyPem: string,
  alpn: string,
): Uint8Array | null {
  if (!offer.tls13 || !offer.aes128gcm || !offer.ecdsaP256 || offer.x25519 === null) return null;
  const privateKey = createPrivateKey(keyPem);
  if (privateKey.asymmetricKeyType !== "ec") return null;

  // Key exchange (RFC 7748 via node:crypto).
  const ours = generateKeyPairSync("x25519");
  const ourPublic = new Uint8Array(
    (ours.publicKey.export({ format: "der", type: "spki" }) as Buffer).subarray(-32),
  );
  const theirs = createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), offer.x25519]),
    format: "der",
    type: "spki",
  });
  const shared = new Uint8Array(diffieHellman({ privateKey: ours.privateKey, publicKey: theirs }));

  const serverHello = handshake(
    2,
    cat(
      u16(0x0303),
      crypto.getRandomValues(new Uint8Array(32)),
      vec(1, offer.sessionId),
      u16(AES_128_GCM_SHA256),
      u8(0),
      vec(
        2,
        cat(
          ext(EXT.supportedVersions, u16(TLS13)),
          ext(EXT.keyShare, cat(u16(X25519), vec(2, ourPublic))),
        ),
      ),
    ),
  );

  // Key schedule (RFC 8446 §7.1), SHA-256.
  const zeros = new Uint8Array(32);
  const early = hmac(zeros, zeros);
  const derived = expandLabel(early, "derived", sha256(new Uint8Array(0)), 32);
  const handshakeSecret = hmac(derived, shared);
  const helloHash = sha256(cat(offer.message, serverHello));
  const serverSecret = expandLabel(handshakeSecret, "s hs traffic", helloHash, 32);
  const key = expandLabel(serverSecret, "key", new Uint8Array(0), 16);
  const iv = expandLabel(serverSecret, "iv", new Uint8Array(0), 12);
  const finishedKey = expandLabel(serverSecret, "finished", new Uint8Array(0), 32);

  const encryptedExtensions = handshake(
    8,
    vec(2, ext(EXT.alpn, vec(2, vec(1, new TextEncoder().encode(alpn))))),
  );
  const entries = pemToDer(certPem).map((der) => cat(vec(3, der), u16(0)));
  const certificate = handshake(11, cat(u8(0), vec(3, cat(...entries))));
  const transcript = [offer.message, serverHello, encryptedExtensions, certificate];
  // RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash.
  const signed = cat(
    new Uint8Array(64).fill(0x20),
    new TextEncoder().encode("TLS 1.3, server CertificateVerify"),
    u8(0),
    sha256(cat(...transcript)),
  );
  const signature = new Uint8Array(sign("sha256", signed, privateKey));
  const certificateVerify = handshake(15, cat(u16(ECDSA_P256_SHA256), vec(2, signature)));
  transcript.push(certificateVerify);
  const finished = handshake(20, hmac(finishedKey, sha256(cat(...transcript))));

  // One encrypted record holding all four messages (RFC 8446 §5.2).
  const inner = cat(encryptedExtensions, certificate, certificateVerify, finished, u8(22));
  const header = cat(u8(23), u16(0x0303), u16(inner.length + 16));
  const cipher = createCipheriv("aes-128-gcm", key, iv); // sequence number 0: the IV itself
  cipher.setAAD(header);
  const body = cat(cipher.update(inner), cipher.final(), cipher.getAuthTag());
  const plainRecord = cat(u8(22), u16(0x0303), vec(2, serverHello));
  // A change_cipher_spec record for middlebox compatibility (RFC 8446 §D.4).
  const ccs = Uint8Array.of(20, 3, 3, 0, 1, 1);
  return cat(plainRecord, ccs, header, body);
}
