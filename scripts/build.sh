#!/usr/bin/env bash
# Compiles the release binary for one target:
#   scripts/build.sh TARGET OUTDIR    -> OUTDIR/edgemux-TARGET
# TARGET is x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu.
#
# It compiles a copy of the source in which build_info.ts holds this build's commit, Deno
# version and target (what `edgemux version` prints), with deno.json's `compile` task, the one
# place the binary's permissions are written. The working tree is never changed.
# EDGEMUX_COMMIT overrides the commit (default: git rev-parse HEAD, "-dirty" with local changes).
set -euo pipefail

usage() { echo "usage: $0 x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu OUTDIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1
out=$2
case "$target" in
  x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
  *) usage ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)

commit=${EDGEMUX_COMMIT:-}
if [ -z "$commit" ]; then
  commit=$(git -C "$root" rev-parse HEAD)
  git -C "$root" diff --quiet HEAD -- || commit="$commit-dirty"
fi
[[ "$commit" =~ ^[0-9a-f]{7,40}(-dirty)?$ ]] || { echo "$0: not a commit: $commit" >&2; exit 2; }
deno_version=$(deno --version | head -1 | cut -d' ' -f2)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Everything but what the program never imports (the compile task embeds only its module graph
# and its --include files, so extra files would be harmless, just slower to copy).
tar -C "$root" -c --exclude=./.git --exclude=./dist --exclude=./edgemux --exclude=./tests \
  --exclude=./testdata --exclude=./bench --exclude=./fuzz --exclude=./reliability \
  --exclude=./.edgemux --exclude=./node_modules . | tar -C "$stage" -x
cat >"$stage/build_info.ts" <<TS
// Written by scripts/build.sh for this build (the file in the repository explains the fields).
export interface BuildInfo {
  commit: string;
  deno: string;
  target: string;
}
export const BUILD_INFO: BuildInfo = {
  commit: "$commit",
  deno: "$deno_version",
  target: "$target",
};
TS

(cd "$stage" && EDGEMUX_COMPILE_FLAGS="--target $target" deno task compile)
mkdir -p "$out"
install -m 0755 "$stage/edgemux" "$out/edgemux-$target"
echo "built $out/edgemux-$target (commit $commit, deno $deno_version)"
