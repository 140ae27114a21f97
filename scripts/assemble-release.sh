#!/usr/bin/env bash
# Completes a release directory that already holds the binaries (edgemux-TARGET) and the
# Debian packages: adds install.sh, the systemd unit, the starter config (starter.yaml, which
# install.sh installs as /etc/edgemux/edgemux.yaml) and SHA256SUMS over every file.
#   scripts/assemble-release.sh DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
root=$(cd "$(dirname "$0")/.." && pwd)
ls "$dir"/edgemux-*-unknown-linux-gnu >/dev/null 2>&1 || { echo "$0: no edgemux-TARGET binary in $dir" >&2; exit 1; }
install -m 0755 "$root/install.sh" "$dir/install.sh"
install -m 0644 "$root/deploy/edgemux.service" "$dir/edgemux.service"
install -m 0644 "$root/deploy/starter.yaml" "$dir/starter.yaml"
rm -f "$dir/SHA256SUMS"
sums=$(cd "$dir" && find . -maxdepth 1 -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum)
echo "$sums" >"$dir/SHA256SUMS"
cat "$dir/SHA256SUMS"
