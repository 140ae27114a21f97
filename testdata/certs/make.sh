#!/bin/sh
# Regenerates every test certificate in this directory:
#   sh testdata/certs/make.sh
# The output is committed. Every run makes new keys, so SPKI pins and serials change too.
set -eu

cd "$(dirname "$0")"

DAYS=36500
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Validity starts a day in the past, so a machine whose clock lags the generating one still
# accepts the certificates; `openssl x509 -req` in OpenSSL 3.0 cannot set a start date, hence
# `openssl ca` below.
now=$(date -u +%s)
start=$(date -u -d "@$((now - 86400))" +%Y%m%d%H%M%SZ)
end=$(date -u -d "@$((now - 86400 + DAYS * 86400))" +%Y%m%d%H%M%SZ)

: >"$work/index.txt"
echo 01 >"$work/serial"
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $work/index.txt
new_certs_dir = $work
# Required even with -rand_serial, which then ignores it.
serial = $work/serial
default_md = sha256
policy = policy_any
# backend-internal and untrusted deliberately share a subject.
unique_subject = no
copy_extensions = none
[policy_any]
organizationName = supplied
commonName = supplied
CNF

# P-256 keys in PKCS#8 PEM ("BEGIN PRIVATE KEY"), which rustls, Deno, nginx and curl all read.
new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
}

# sign NAME ISSUER EXTFILE [-selfsign]
sign() {
  name=$1 issuer=$2 ext=$3
  shift 3
  openssl ca -batch -config "$work/ca.cnf" -notext -rand_serial \
    -startdate "$start" -enddate "$end" \
    -cert "$issuer.pem" -keyfile "$issuer.key" "$@" \
    -in "$work/$name.csr" -extfile "$ext" -out "$name.pem" 2>"$work/$name.log" ||
    { cat "$work/$name.log" >&2; exit 1; }
}

# make_ca NAME "Common Name"
make_ca() {
  new_key "$1"
  openssl req -new -key "$1.key" -subj "/O=edgemux tests/CN=$2" -out "$work/$1.csr"
  {
    echo "basicConstraints=critical,CA:TRUE,pathlen:0"
    echo "keyUsage=critical,keyCertSign,cRLSign"
    echo "subjectKeyIdentifier=hash"
  } >"$work/$1.ext"
  openssl ca -batch -config "$work/ca.cnf" -notext -rand_serial -selfsign \
    -startdate "$start" -enddate "$end" -keyfile "$1.key" \
    -in "$work/$1.csr" -extfile "$work/$1.ext" -out "$1.pem" 2>"$work/$1.log" ||
    { cat "$work/$1.log" >&2; exit 1; }
}

# make_leaf NAME ISSUER EKU CN [SAN...]
# The subject CN repeats the first name so a test can tell certificates apart from the
# subject line alone (openssl s_client prints it).
make_leaf() {
  name=$1 issuer=$2 eku=$3 cn=$4
  shift 4
  san=""
  for entry in "$@"; do
    san="${san:+$san,}$entry"
  done
  new_key "$name"
  openssl req -new -key "$name.key" -subj "/O=edgemux tests/CN=$cn" -out "$work/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } >"$work/$name.ext"
  sign "$name" "$issuer" "$work/$name.ext"
}

make_ca ca "edgemux test CA"
make_ca other-ca "edgemux other CA"

make_leaf vault ca serverAuth vault.example.test DNS:vault.example.test
make_leaf git ca serverAuth git.example.test DNS:git.example.test
make_leaf apps-wildcard ca serverAuth "*.apps.example.test" "DNS:*.apps.example.test"
make_leaf default-backend ca serverAuth default.example.test DNS:default.example.test
make_leaf prometheus ca serverAuth prometheus.example.test DNS:prometheus.example.test
make_leaf edge-wildcard ca serverAuth "*.example.test" "DNS:*.example.test" DNS:example.test
make_leaf backend-internal ca serverAuth backend.internal DNS:backend.internal IP:127.0.0.1
make_leaf client ca clientAuth edgemux-client
make_leaf wrong-name ca serverAuth other.example.test DNS:other.example.test
# Same names as backend-internal; only the issuer differs, so a client that trusts ca.pem
# must reject it for the chain alone.
make_leaf untrusted other-ca serverAuth backend.internal DNS:backend.internal IP:127.0.0.1

# These keys are fixtures, not secrets: unprivileged test runners and nginx workers read them.
chmod 644 ./*.pem ./*.key

for cert in ./*.pem; do
  printf '%-22s ' "$cert"
  openssl x509 -in "$cert" -noout -subject -issuer -enddate -ext subjectAltName 2>/dev/null |
    grep -v 'Subject Alternative Name' | tr -s ' \n' ' '
  echo
done
