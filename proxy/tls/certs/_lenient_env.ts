/**
 * Lets npm `acme-client` load under edgemux's narrow `--allow-env` list (the compiled binary
 * may read four variables). Its `debug` dependency lists every environment variable when it
 * loads, and axios asks for the proxy variables (`HTTPS_PROXY`, `NO_PROXY`, …) on each request;
 * Deno's `process.env` throws NotCapable for each variable outside the list. Imported before
 * acme-client (certs/acme.ts), this replaces `process.env`, when the environment is not wholly
 * readable, with a view that answers "unset" for what may not be read and passes everything
 * else through to `Deno.env`. edgemux's own code reads `Deno.env`, which is unchanged.
 *
 * @module
 */

import process from "node:process";

function readable(): boolean {
  return Deno.permissions.querySync({ name: "env" }).state === "granted";
}

if (!readable()) {
  const get = (name: string): string | undefined => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const view = new Proxy({} as Record<string, string | undefined>, {
    get: (_, key) => typeof key === "string" ? get(key) : undefined,
    has: (_, key) => typeof key === "string" && get(key) !== undefined,
    set: (_, key, value) => {
      if (typeof key !== "string") return false;
      try {
        Deno.env.set(key, String(value));
      } catch {
        // Not ours to set; the library works without it.
      }
      return true;
    },
    deleteProperty: () => true,
    ownKeys: () => [],
    getOwnPropertyDescriptor: (_, key) => {
      const value = typeof key === "string" ? get(key) : undefined;
      return value === undefined
        ? undefined
        : { value, writable: true, enumerable: true, configurable: true };
    },
  });
  Object.defineProperty(process, "env", { value: view, configurable: true, writable: true });
}
