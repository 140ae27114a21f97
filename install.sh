#!/bin/sh
# Installs edgemux from a GitHub release. Read it first; it is short:
#   curl -fsSL https://github.com/edgemux/edgemux/releases/latest/download/install.sh | sudo sh
#
# 1. downloads the binary for this machine (uname -m), the systemd unit, the starter config and
#    SHA256SUMS, and checks them: on a mismatch nothing is installed;
# 2. installs /usr/bin/edgemux and /etc/systemd/system/edgemux.service;
# 3. creates the system user edgemux, and /etc/edgemux/edgemux.yaml if there is none.
# Run again to upgrade; the config is never overwritten. Settings, all optional:
#   EDGEMUX_VERSION=0.1.0  that release instead of the latest
#   EDGEMUX_RELEASE_URL    download from here instead of GitHub (a mirror, or a test server)
#   EDGEMUX_ROOT=/some/dir install below this directory instead of / (for tests and images)
set -eu

releases=https://github.com/edgemux/edgemux/releases
if [ -n "${EDGEMUX_VERSION:-}" ]; then url=$releases/download/v$EDGEMUX_VERSION; else url=$releases/latest/download; fi
url=${EDGEMUX_RELEASE_URL:-$url}
root=${EDGEMUX_ROOT:-}

die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run it as root (sudo sh install.sh)"
command -v curl >/dev/null || die "curl is missing (Debian package curl)"
case $(uname -m) in
  x86_64 | amd64) target=x86_64-unknown-linux-gnu ;;
  aarch64 | arm64) target=aarch64-unknown-linux-gnu ;;
  *) die "there is no release binary for $(uname -m); see docs/install.md to build from source" ;;
esac
binary=edgemux-$target

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "Downloading edgemux for $target from $url"
for file in SHA256SUMS "$binary" edgemux.service starter.yaml; do
  curl -fsSL -o "$tmp/$file" "$url/$file" || die "could not download $url/$file"
done
grep -E "  ($binary|edgemux\.service|starter\.yaml)\$" "$tmp/SHA256SUMS" >"$tmp/wanted" || true
[ "$(wc -l <"$tmp/wanted")" -eq 3 ] || die "SHA256SUMS does not list $binary, edgemux.service and starter.yaml"
(cd "$tmp" && sha256sum --check --quiet wanted) ||
  die "checksum mismatch: the download is damaged or not the release; nothing was installed"
chmod 0755 "$tmp/$binary"
"$tmp/$binary" version >/dev/null ||
  die "$binary does not run here (or $tmp is mounted noexec: set TMPDIR); nothing was installed"

# The binary is replaced by a rename, so a running edgemux keeps its old file until restarted.
install -d "$root/usr/bin" "$root/etc/systemd/system"
install -m 0755 "$tmp/$binary" "$root/usr/bin/.edgemux.new"
mv -f "$root/usr/bin/.edgemux.new" "$root/usr/bin/edgemux"
install -m 0644 "$tmp/edgemux.service" "$root/etc/systemd/system/edgemux.service"

if ! grep -q '^edgemux:' "$root/etc/passwd"; then
  useradd ${root:+--prefix "$root"} --system --user-group --home-dir /var/lib/edgemux \
    --no-create-home --shell /usr/sbin/nologin edgemux
fi
gid=$(awk -F: '$1 == "edgemux" { print $3 }' "$root/etc/group")
[ -n "$gid" ] || die "the group edgemux is missing from $root/etc/group"
# Config and keys: readable by root and the service's group only.
install -d -m 0750 -o 0 -g "$gid" "$root/etc/edgemux" "$root/etc/edgemux/certs"
if [ -e "$root/etc/edgemux/edgemux.yaml" ]; then
  echo "Kept the existing $root/etc/edgemux/edgemux.yaml"
else
  install -m 0640 -o 0 -g "$gid" "$tmp/starter.yaml" "$root/etc/edgemux/edgemux.yaml"
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

echo "Installed $("$root/usr/bin/edgemux" version | head -1) for $target. Next:"
echo "  sudo edgemux check -c /etc/edgemux/edgemux.yaml   # after editing it for your services"
echo "  sudo systemctl enable --now edgemux                # or: systemctl restart edgemux, to upgrade"
