/**
 * Ports for programs that cannot bind port 0 and report it back (nginx, sshd).
 *
 * @module
 */

/**
 * Binds 127.0.0.1 port 0, reads the port the kernel chose and releases it. Another process
 * can take that port before the caller binds it; callers that use this retry on "Address
 * already in use". Prefer binding port 0 directly whenever the program can report its port.
 */
export function pickFreePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
