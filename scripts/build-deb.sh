#!/usr/bin/env bash
# Builds the Debian package from a compiled binary:
#   scripts/build-deb.sh BINARY amd64|arm64 OUTDIR    -> OUTDIR/edgemux_VERSION_ARCH.deb
# VERSION is deno.json's. Contents: /usr/bin/edgemux, the systemd unit (deploy/edgemux.service),
# /etc/edgemux/edgemux.yaml as a conffile (deploy/starter.yaml), /etc/edgemux/certs, and the
# maintainer scripts in deploy/debian/: the system user edgemux on install, root:edgemux
# ownership of /etc/edgemux through dpkg-statoverride, systemctl daemon-reload when systemd runs.
# DEB_MAINTAINER overrides the Maintainer field. Needs dpkg-deb and gzip.
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 BINARY amd64|arm64 OUTDIR" >&2; exit 2; }
binary=$1
arch=$2
out=$3
case "$arch" in amd64 | arm64) ;; *) echo "$0: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;; esac
[ -x "$binary" ] || { echo "$0: $binary is not an executable file" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$root/deno.json")
[ -n "$version" ] || { echo "$0: no version in deno.json" >&2; exit 1; }
maintainer=${DEB_MAINTAINER:-edgemux maintainers <maintainers@edgemux.example.org>}
# Reproducible: file times and the changelog date come from SOURCE_DATE_EPOCH, else the commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

pkg=$(mktemp -d)
chmod 0755 "$pkg"
trap 'rm -rf "$pkg"' EXIT
install -D -m 0755 "$binary" "$pkg/usr/bin/edgemux"
install -D -m 0644 "$root/deploy/edgemux.service" "$pkg/lib/systemd/system/edgemux.service"
install -D -m 0640 "$root/deploy/starter.yaml" "$pkg/etc/edgemux/edgemux.yaml"
install -d -m 0750 "$pkg/etc/edgemux/certs"
doc="$pkg/usr/share/doc/edgemux"
install -d -m 0755 "$doc"
{
  cat <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edgemux

Files: *
Copyright: 2026 The edgemux authors
License: MIT
COPYRIGHT
  # The licence text, indented one space, blank lines as " ." (copyright-format 1.0).
  tail -n +5 "$root/LICENSE" | sed 's/^$/./; s/^/ /'
} >"$doc/copyright"
chmod 0644 "$doc/copyright"
cat <<CHANGELOG | gzip -9n >"$doc/changelog.gz"
edgemux ($version) unstable; urgency=medium

  * edgemux $version; the release notes are in CHANGELOG.md of the source.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGELOG
chmod 0644 "$doc/changelog.gz"

install -d -m 0755 "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$root/deploy/debian/$script" "$pkg/DEBIAN/$script"
done
echo /etc/edgemux/edgemux.yaml >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$pkg/DEBIAN/md5sums"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: edgemux
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: adduser, libc6, libgcc-s1
Section: net
Priority: optional
Description: edge proxy for SSH, TLS and HTTP on one address
 edgemux takes the connections on ports 22, 80 and 443 and sends each one to
 the right service: TLS passthrough by server name, TLS termination with HTTP
 routing by host and path, SSH and plain TCP forwarding, and redirects from
 http to https. It runs as a hardened systemd service under its own user.
CONTROL
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$out/edgemux_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "built $deb"
