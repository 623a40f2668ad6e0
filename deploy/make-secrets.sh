#!/usr/bin/env bash
# Makes the secrets docker-compose.yml mounts (as Compose secrets, under /run/secrets/), once,
# in deploy/secrets/ (never committed: .gitignore): the MariaDB password of the ledger agent's
# user, txcoord's bearer tokens with one file per scope for clients, and the mutual-TLS CA and
# certificates (deploy/make-certs.sh: coordinator, each agent, client, admin) in secrets/certs/.
#
#   bash deploy/make-secrets.sh      then   docker compose up
#
# Existing files are kept, so running it again changes nothing. Random values come from
# /dev/urandom; every file is readable by its owner only.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
random() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
[ -f secrets/ledger_password ] || random >secrets/ledger_password
if [ ! -f secrets/txcoord_tokens ]; then
  echo "# made by deploy/make-secrets.sh: SCOPE TOKEN NAME (txcoord --token-file)" >secrets/txcoord_tokens
  for scope in client admin agent; do
    token=$(random)
    echo "$token" >"secrets/${scope}_token"
    echo "$scope $token compose-$scope" >>secrets/txcoord_tokens
  done
fi
bash make-certs.sh secrets/certs coordinator orders inventory ledger catalog client admin >/dev/null
echo "make-secrets: deploy/secrets/ holds ledger_password, txcoord_tokens, {client,admin,agent}_token and certs/"
