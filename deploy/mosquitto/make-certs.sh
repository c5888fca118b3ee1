#!/bin/sh
# A private CA and a broker certificate for MQTT over TLS (deploy/mosquitto/tls.conf), written to
# deploy/mosquitto/certs/ (not committed): ca.crt is what devices trust; tls.crt and tls.key are
# the broker's. For a real deployment use your own CA or cert-manager; this is for a laptop.
#   deploy/mosquitto/make-certs.sh [host ...]   (default: localhost 127.0.0.1)
set -eu
out="${CERTS_DIR:-$(dirname "$0")/certs}"
mkdir -p "$out"
[ "$#" -gt 0 ] || set -- localhost 127.0.0.1
san=""
for host in "$@"; do
  case "$host" in
    *[!0-9.]*) san="${san:+$san,}DNS:$host" ;;
    *) san="${san:+$san,}IP:$host" ;;
  esac
done
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=twinbill MQTT CA" \
  -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$out/tls.ext"
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 825 -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
rm -f "$out/tls.csr" "$out/tls.ext" "$out/ca.srl"
chmod 644 "$out/tls.key"  # the broker runs as uid 1883 and reads it through a read-only mount
echo "certificates in $out: devices trust ca.crt; the broker serves tls.crt for $*"
