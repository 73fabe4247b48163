#!/usr/bin/env bash
# Schemathesis against a freshly stamped service's own /openapi.json.
#
#   xtask/schemathesis/run.sh [oauth2|jwt|supabase] [MAX_EXAMPLES]
#
# Stamps the template (cargo xtask new, under target/schemathesis), builds
# it, runs it on a throwaway SQLite file (supabase: against gotrue-stub),
# logs in as an admin, checks that /openapi.json is valid OpenAPI 3.1
# (openapi-spec-validator), then runs schemathesis with `--checks all`:
# every phase (examples, coverage, fuzzing, stateful), MAX_EXAMPLES test
# cases per operation (default 20; CI uses the default). Exit status 0 only
# when both report no failure.
#
# The Python tools live in a virtualenv this script makes
# (target/schemathesis/venv, pinned by requirements.txt beside it).
#
# Two things keep the run meaningful while it authenticates as the only
# admin (see hooks.py): a generated PATCH or DELETE of that admin is sent to
# an id nobody has, and POST /auth/logout (which ends the admin's login) is
# tested last, in a run of its own with a token of its own.
set -euo pipefail

strategy="${1:-oauth2}"
examples="${2:-20}"
case "$strategy" in
  oauth2 | jwt | supabase) ;;
  *) echo "usage: $0 [oauth2|jwt|supabase] [MAX_EXAMPLES]" >&2; exit 2 ;;
esac
[[ "$examples" =~ ^[1-9][0-9]*$ ]] || { echo "MAX_EXAMPLES must be a positive number, not '$examples'" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$repo/target/schemathesis"
venv="$work/venv"
project="$work/st-$strategy"
target_dir="${CARGO_TARGET_DIR_STAMPED:-$repo/target/stamped}"
cargo="${CARGO:-cargo}"
mkdir -p "$work"

say() { printf '\n--> %s\n' "$*"; }

# -- tools -------------------------------------------------------------------
if ! "$venv/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null \
  || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  say "making the virtualenv $venv (pinned by requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
py="$venv/bin/python"

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { "$py" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# -- stamp and build -----------------------------------------------------------
say "stamping the $strategy template into $project"
(cd "$repo" && "$cargo" run --quiet -p xtask -- new --strategy "$strategy" --name "st-$strategy" --dest "$project" --force)
say "building it (CARGO_TARGET_DIR=$target_dir)"
packages=(-p "st-$strategy")
[[ "$strategy" == supabase ]] && packages+=(-p gotrue-stub)
# The flags of `cargo xtask test-templates`, so what it built is reused.
(cd "$project" && CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="-D warnings" "$cargo" build --quiet "${packages[@]}")

# -- run -----------------------------------------------------------------------
data="$(mktemp -d "$work/run-XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

port="$(free_port)"
base="http://127.0.0.1:$port"
admin_password="st-admin-$("$py" -c 'import secrets; print(secrets.token_hex(8))')"
export PORT="$port" DATABASE_URL="sqlite://$data/service.db?mode=rwc" RUST_LOG=warn
if [[ "$strategy" == supabase ]]; then
  stub_port="$(free_port)"
  "$target_dir/debug/gotrue-stub" --port "$stub_port" --env-file "$project/.env" > "$data/stub.log" 2>&1 &
  pids+=($!)
  export SUPABASE_URL="http://127.0.0.1:$stub_port"
  for _ in $(seq 100); do curl -sf "$SUPABASE_URL/auth/v1/health" > /dev/null && break; sleep 0.1; done
else
  export ADMIN_USERNAME=st-admin ADMIN_PASSWORD="$admin_password"
fi
say "starting the service on $base (its log: target/schemathesis/service-$strategy.log)"
(cd "$project" && exec "$target_dir/debug/st-$strategy") > "$work/service-$strategy.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "$base/health" > /dev/null && break; sleep 0.1; done
curl -sf "$base/health" > /dev/null || { echo "the service did not start; see $work/service-$strategy.log" >&2; exit 1; }

# An admin's token (and the admin's id, which hooks.py protects).
admin_token() {
  if [[ "$strategy" == supabase ]]; then
    curl -sf -X POST "$base/token" --data-urlencode grant_type=password \
      --data-urlencode username=st-admin@example.com --data-urlencode "password=$admin_password" | json_field access_token
  else
    curl -sf -X POST "$base/token" --data-urlencode grant_type=password \
      --data-urlencode username=st-admin --data-urlencode "password=$admin_password" | json_field access_token
  fi
}
if [[ "$strategy" == supabase ]]; then
  # The admin is a Supabase user whose app_metadata says so, set through
  # gotrue-stub's admin API with its service role key (never the service's).
  service_key="$(grep -o 'service role key: [^ ]*' "$data/stub.log" | head -1 | cut -d' ' -f4)"
  user_id="$(curl -sf -X POST "$base/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"st-admin@example.com\",\"password\":\"$admin_password\"}" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["user"]["id"])')"
  curl -sf -X PUT "$SUPABASE_URL/auth/v1/admin/users/$user_id" -H "apikey: $service_key" \
    -H "authorization: Bearer $service_key" -H 'content-type: application/json' \
    -d '{"app_metadata":{"role":"admin"}}' > /dev/null
fi
# Two logins, taken now: the run fuzzes POST /token, and its failed logins
# soon lock this address out (429) until LOGIN_LOCKOUT_SECONDS pass.
token="$(admin_token)"
logout_token="$(admin_token)"
admin_id="$("$py" -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sub"])' "$token")"

say "validating $base/openapi.json as OpenAPI 3.1"
curl -sf "$base/openapi.json" > "$data/openapi.json"
"$py" -m openapi_spec_validator "$data/openapi.json"

run_schemathesis() {
  PYTHONPATH="$here" SCHEMATHESIS_HOOKS=hooks SCHEMATHESIS_PROTECTED_USER_ID="$admin_id" \
    "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" --no-color \
    run "$base/openapi.json" --checks all --max-examples "$examples" \
    --seed "${SCHEMATHESIS_SEED:-20261202}" "$@"
}
say "schemathesis, every operation but logout ($examples examples each)"
run_schemathesis -H "Authorization: Bearer $token" --exclude-path /auth/logout \
  --exclude-path /auth/reset-password --exclude-path /auth/verify \
  --exclude-path /users/me/password
# A generated token (or current password) is schema-valid but never the
# one the service sent (or holds): 400 is the right answer, so "valid data
# accepted" cannot hold here; every other check still runs.
if [ "$strategy" != supabase ]; then
  say "schemathesis, the routes that need a secret the client cannot generate (400 expected)"
  run_schemathesis -H "Authorization: Bearer $token" --include-path /auth/reset-password \
    --include-path /auth/verify --include-path /users/me/password \
    --exclude-checks positive_data_acceptance
fi
say "schemathesis, POST /auth/logout with a token of its own"
run_schemathesis -H "Authorization: Bearer $logout_token" --include-path /auth/logout
say "no failure: $strategy"
