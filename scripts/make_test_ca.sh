#!/bin/sh
# make_test_ca.sh DIR — throwaway TLS material for the Alpaca stand-in and its tests.
#
# Writes into DIR (created if missing):
#   ca.crt, ca.key                 a test CA (EC P-256, 2 days)
#   server.crt, server.key         server certificate signed by the CA, SAN localhost, 127.0.0.1, ::1
#   untrusted.crt, untrusted.key   a self-signed certificate with the same SANs, signed by nobody
#                                  the clients trust (for the negative TLS test)
# Keys are mode 0600. Idempotent: existing, still-valid files are kept; delete DIR to start over.
# openssl CLI only. Test material: never use it for anything real.
set -eu

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
umask 077
mkdir -p "$DIR"
cd "$DIR"

DAYS=2
SAN="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

# valid FILE: exists and does not expire within the next hour
valid() {
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend 3600 >/dev/null 2>&1
}

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

if ! valid ca.crt || [ ! -s ca.key ]; then
    newkey ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" \
        -subj "/O=pg_alpaca tests/CN=pg_alpaca throwaway test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt
    rm -f server.crt  # a new CA invalidates the old server certificate
fi

if ! valid server.crt || [ ! -s server.key ] ||
    ! openssl verify -CAfile ca.crt server.crt >/dev/null 2>&1; then
    newkey server.key
    EXT=$(mktemp)
    trap 'rm -f "$EXT" server.csr' EXIT
    printf '%s\n%s\n%s\n%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "$SAN" >"$EXT"
    openssl req -new -key server.key -subj "/O=pg_alpaca tests/CN=localhost" -out server.csr
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days "$DAYS" -sha256 -extfile "$EXT" -out server.crt 2>/dev/null
    rm -f server.csr ca.srl
fi

if ! valid untrusted.crt || [ ! -s untrusted.key ]; then
    newkey untrusted.key
    openssl req -x509 -new -key untrusted.key -sha256 -days "$DAYS" \
        -subj "/O=pg_alpaca tests/CN=localhost (untrusted)" \
        -addext "$SAN" -out untrusted.crt
fi

chmod 600 ca.key server.key untrusted.key
chmod 644 ca.crt server.crt untrusted.crt
echo "test CA and certificates in $(pwd)"
