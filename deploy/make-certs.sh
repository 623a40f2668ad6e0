#!/usr/bin/env bash
# Makes a private CA and one certificate per name for txcoord's mutual TLS (Debian's openssl):
#
#   bash deploy/make-certs.sh DIR [NAME...]
#
# DIR gets ca.pem (give it to every process as --tls-ca), ca.key (keep it away from them), and
# for each NAME NAME.pem + NAME.key (--tls-cert / --tls-key). NAME is the certificate's identity,
# its DNS subject alternative name: "coordinator" for txcoord (agents' --coordinator-identity,
# clients' --tls-server-name), the participant name for each agent (txcoord checks that the
# agent it dials presents it, and takes the agents' calls only from those names), anything for
# clients (tokens decide what they may do). Without names: coordinator, the local cluster's and
# docker-compose's agents, client and admin.
#
# Existing files are kept, so running it again only adds what is missing. Keys are P-256,
# readable by their owner only; certificates last 825 days, the CA 10 years.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 DIR [NAME...]" >&2; exit 2; fi
dir=$1
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(coordinator orders inventory ledger catalog client admin)
umask 077
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.pem -days 3650 -subj "/CN=txcoord CA" 2>/dev/null
fi
for name in "${names[@]}"; do
  if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]]; then
    echo "make-certs: '$name' is not a DNS name" >&2
    exit 2
  fi
  [ -f "$name.pem" ] && continue
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" \
    -out "$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" \
    -days 825 -extfile <(printf '%s\n' "subjectAltName=DNS:$name" \
      "extendedKeyUsage=serverAuth,clientAuth" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature") 2>/dev/null
  rm -f "$name.csr"
done
chmod 644 ca.pem ./*.pem
echo "make-certs: $dir holds ca.pem and certificates for ${names[*]}"
