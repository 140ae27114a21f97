/**
 * Finding the external programs that end-to-end tests drive.
 *
 * @module
 */

// Daemons such as sshd and nginx live in sbin directories, which are not on an unprivileged
// user's PATH on Debian; searching them too keeps the result independent of who runs the tests.
const SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Returns the absolute path of an external command, or throws naming the Debian package that
 * provides it. Tests call this instead of skipping, so a CI image that lacks a tool fails loudly.
 *
 * @param command a bare command name (searched on PATH and in the sbin directories) or a path
 * @param debianPackage the Debian package that installs `command`
 * @returns the absolute path of the executable
 * @throws {Error} when no executable file is found
 * @example
 * ```ts
 * const ssh = requireTool("ssh", "openssh-client");
 * ```
 */
export function requireTool(command: string, debianPackage: string): string {
  if (command.includes("/")) {
    if (isExecutableFile(command)) return command;
  } else {
    const pathDirs = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir.startsWith("/"));
    for (const dir of [...pathDirs, ...SBIN_DIRS]) {
      const candidate = `${dir}/${command}`;
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  throw new Error(
    `required tool "${command}" is missing: install the Debian package ${debianPackage} ` +
      `(apt-get install -y ${debianPackage})`,
  );
}
