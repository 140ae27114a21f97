#!/usr/bin/env bash
# Prints the release notes for a version tag: the section "## VERSION" of CHANGELOG.md.
#   scripts/release-notes.sh vX.Y.Z
# Fails when the tag is not v followed by deno.json's version, or the section is missing or empty,
# so a release cannot go out with the wrong version or without notes.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 vX.Y.Z" >&2; exit 2; }
tag=$1
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$root/deno.json")
[ "$tag" = "v$version" ] || { echo "$0: tag $tag does not match deno.json's version $version (expected v$version)" >&2; exit 1; }
notes=$(awk -v heading="## $version" '
  $0 == heading || index($0, heading " ") == 1 { inside = 1; next }
  inside && /^## / { exit }
  inside { print }
' "$root/CHANGELOG.md" | sed -e '/./,$!d')
[ -n "$notes" ] || { echo "$0: CHANGELOG.md has no notes under \"## $version\"" >&2; exit 1; }
printf '%s\n' "$notes"
