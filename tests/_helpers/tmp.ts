/**
 * Temporary directories that remove themselves.
 *
 * @module
 */

/** A temporary directory; disposing it removes it and everything inside. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the directory. */
  readonly path: string;
}

/**
 * Creates a fresh directory under the system temp directory.
 *
 * @param prefix start of the directory name, to tell leftovers apart
 * @returns the directory, to be used with `await using`
 * @example
 * ```ts
 * await using dir = await makeTempDir("edgemux-test-");
 * await Deno.writeTextFile(`${dir.path}/a.txt`, "a");
 * ```
 */
export async function makeTempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      try {
        await Deno.remove(path, { recursive: true });
      } catch (error) {
        // A test may already have removed it on purpose.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    },
  };
}
