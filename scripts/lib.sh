# Shared helpers for scripts/*.sh. Source it; it sets strict mode.
set -euo pipefail

PGA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PGA_ROOT
export DEBIAN_FRONTEND=noninteractive
PGA_PG_MAJOR=15
PGA_PG_BIN=${PGA_PG_BIN:-/usr/lib/postgresql/$PGA_PG_MAJOR/bin}

log() { printf '\033[1m[pg_alpaca]\033[0m %s\n' "$*" >&2; }
die() { printf '[pg_alpaca] error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else
        command -v sudo >/dev/null || die "need root for: $* (install sudo or run as root)"
        sudo -n "$@"
    fi
}

PGA_APT_PACKAGES=(build-essential cmake pkg-config clang-14 libclang-rt-14-dev
    postgresql-$PGA_PG_MAJOR postgresql-server-dev-$PGA_PG_MAJOR postgresql-contrib postgresql-$PGA_PG_MAJOR-pgaudit libpq-dev
    libssl-dev libcurl4-openssl-dev libmicrohttpd-dev rapidjson-dev googletest libgtest-dev libbenchmark-dev
    python3 python3-jsonschema python3-psycopg2 python3-psycopg python3-venv openssl curl ca-certificates procps util-linux)

# Installs whatever Debian packages are missing (once; quiet when all are there).
ensure_packages() {
    local missing=() p
    for p in "${PGA_APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Debian's postgresql package may start a system cluster; we never use it.
    # Who runs what is decided in one place, scripts/stackctl.py: it checks the runner and
    # creates the sidecar's OS user when missing (it warns loudly when it cannot).
    "$PGA_ROOT/scripts/stack.sh" users >/dev/null
}

# Builds the CMake targets (sidecar, keygen, unit tests) into $PGA_ROOT/build.
build_cmake() {
    local dir=${1:-$PGA_ROOT/build}; shift || true
    cmake -S "$PGA_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -E 'warning|error' || true
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "cmake build failed in $dir"
}

# The official clients the tests run (test/clients/*/), pinned: every folder with a
# package-lock.json gets `npm ci` (node_modules beside it); every folder with a requirements.txt
# (all versions pinned, every file's hash given) gets a venv under $PGA_BUILD_DIR/test-clients/
# NAME, filled with `pip install --require-hashes`. Each is redone only when its lock file
# changed. Tests find them with test/integration/clients_lib.py.
ensure_test_clients() {
    local build=${PGA_BUILD_DIR:-$PGA_ROOT/build} dir name stamp sum venv
    mkdir -p "$build/test-clients"
    # Node.js may come from elsewhere than Debian (with its own npm): only when there is no npm
    # at all, take Debian's.
    if ! command -v npm >/dev/null; then
        log "installing: nodejs npm"
        as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    for dir in "$PGA_ROOT"/test/clients/*/; do
        dir=${dir%/}
        name=$(basename "$dir")
        if [ -f "$dir/package-lock.json" ]; then
            stamp="$dir/node_modules/.pga-lock-sha256"
            sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
            if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
                log "test client $name: npm ci"
                (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
                    die "npm ci failed in $dir"
                echo "$sum" >"$stamp"
            fi
        fi
        if [ -f "$dir/requirements.txt" ]; then
            venv="$build/test-clients/$name"
            stamp="$venv/.pga-requirements-sha256"
            sum=$(sha256sum "$dir/requirements.txt" | cut -d' ' -f1)
            if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
                log "test client $name: venv and pip install --require-hashes"
                rm -rf "$venv"
                /usr/bin/python3 -m venv "$venv" || die "python3 -m venv failed (python3-venv)"
                "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
                    --require-hashes --only-binary=:all: -r "$dir/requirements.txt" >/dev/null ||
                    die "pip install failed for $dir/requirements.txt"
                echo "$sum" >"$stamp"
            fi
        fi
    done
}

# Builds and installs the extension into the system PostgreSQL.
build_extension() {
    make -C "$PGA_ROOT" -j"$(nproc)" -s 2>&1 | grep -E 'warning|error' || true
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "extension build failed"
    # One install at a time: parallel checkouts on one machine share the server's lib dir.
    as_root flock "${TMPDIR:-/tmp}/pga-install.lock" make -C "$PGA_ROOT" -s install >/dev/null
}
