#!/usr/bin/env bash
# Makes the key files test/sql/key_ring.sql needs (`make installcheck` runs this first):
#   scripts/regress_keys.sh DIR
# The server is the one libpq's environment names (PGHOST, PGPORT, PGUSER: a superuser, as for
# installcheck); the files are made from its own pg_alpaca.key_file (which must hold one key,
# id 1, as `alpaca-keygen new` makes it), in DIR, owned by the server's OS user (the key file's
# owner; as root we become it, else we must be it). Their paths are the PGA_TEST_KEYS_* of the
# Makefile. No key is printed.
set -euo pipefail
dir=${1:?usage: regress_keys.sh DIR}
keyfile=$(psql -X -At -d postgres -c "SHOW pg_alpaca.key_file" 2>/dev/null) ||
    { echo "regress_keys.sh: cannot ask the server for pg_alpaca.key_file (is it running, is PGHOST/PGPORT/PGUSER set, is pg_alpaca in shared_preload_libraries?)" >&2; exit 1; }
[ -n "$keyfile" ] || { echo "regress_keys.sh: the server's pg_alpaca.key_file is not set" >&2; exit 1; }
owner=$(stat -c %U "$keyfile" 2>/dev/null) ||
    { echo "regress_keys.sh: cannot see $keyfile (run as root or as the server's OS user)" >&2; exit 1; }
me=$(id -un)
if [ "$me" = "$owner" ]; then as_owner() { "$@"; }
elif [ "$(id -u)" -eq 0 ]; then as_owner() { runuser -u "$owner" -- "$@"; }
else echo "regress_keys.sh: the key file belongs to $owner: run as root or as $owner" >&2; exit 1; fi

rm -rf "$dir"
mkdir -p "$dir"
[ "$me" = "$owner" ] || chown "$owner" "$dir"
chmod 700 "$dir"
as_owner bash -euo pipefail -c '
    cd "$1"; umask 077
    next=$(( $(awk "/^[0-9]/ { if (\$1 > m) m = \$1 } END { print m + 0 }" "$2") + 1 ))
    cp "$2" two.keys && printf "%s %s\n" "$next" "$(openssl rand -base64 32)" >> two.keys
    grep "^$next " two.keys > only2.keys
    cp "$2" public.keys && chmod 644 public.keys
    printf "# a comment\n\n1 not-base64!!\n" > bad_line.keys
    printf "1 %s\n" "$(openssl rand -base64 16)" > short.keys
    printf "1 %s\n1 %s\n" "$(openssl rand -base64 32)" "$(openssl rand -base64 32)" > dup.keys
    printf "# no keys here\n\n" > empty.keys' regress_keys "$dir" "$keyfile"
