#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, from Debian's packages.
#
#   scripts/pg.sh start  DIR [NAME=VALUE ...]  create (if needed) and start a cluster in DIR;
#                                              prints its URL, the only line on stdout
#   scripts/pg.sh stop   DIR                   stop it by the PID in DIR/pid (never by name)
#   scripts/pg.sh pause  DIR                   stop, keeping data, port and settings
#   scripts/pg.sh resume DIR                   start again on the same port with the same
#                                              settings (for outage tests)
#
# NAME=VALUE pairs are server settings, e.g. default_transaction_isolation=serializable.
# The cluster trusts every connection from 127.0.0.1 and listens nowhere else; the
# URL is postgres://postgres@127.0.0.1:PORT/postgres. Durability is off (fsync,
# synchronous_commit, full_page_writes): a crash loses the data, which is the point.
#
# initdb refuses to run as root, so as root the server runs as the `postgres`
# system user (the package creates it) and DIR is handed to that user; DIR's
# parent directories must be searchable by it (e.g. under /tmp).
set -euo pipefail

WAIT=30 # seconds, for every wait here

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then
            echo "$d"
            return
        fi
    fi
    # Debian keeps the server binaries off PATH; take the newest version.
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V -r | head -n 1)
    if [ -x "$d" ]; then
        dirname "$d"
        return
    fi
    die "no PostgreSQL server binaries (initdb): install the postgresql package (scripts/deps.sh)"
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A port nothing listens on right now; the start below retries if one
# appears there in between.
pick_port() {
    local port _
    for _ in $(seq 1 50); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

# PID from DIR/pid if that process is alive and is this cluster's postmaster
# (a recycled PID must never be signalled).
running_pid() {
    local dir=$1 pid
    [ -f "$dir/pid" ] || return 1
    pid=$(head -n 1 "$dir/pid" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/data" || return 1
    echo "$pid"
}

url_for() {
    echo "postgres://postgres@127.0.0.1:$1/postgres"
}

prepare_dir() {
    local dir=$1
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' system user: install the postgresql package"
        chown postgres: "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "$dir: the postgres user cannot reach it (make its parent directories searchable, or use a directory under /tmp)"
    fi
}

init_cluster() {
    local dir=$1 bin=$2
    [ -f "$dir/data/PG_VERSION" ] && return
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 ||
        as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
            --no-sync >"$dir/initdb.log" 2>&1 ||
        {
            tail -n 20 "$dir/initdb.log" >&2
            die "initdb failed in $dir/data (log: $dir/initdb.log)"
        }
    # Trust on the loopback address and the private socket only.
    as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<'EOF'
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    echo "include_if_exists = 'racefree.conf'" | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
}

# DIR/data/racefree.conf: fixed test settings, then the caller's extras.
write_settings() {
    local dir=$1 port=$2
    shift 2
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '${dir//\'/\'\'}'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "max_connections = 300"
        local kv value
        for kv in "$@"; do
            value=${kv#*=}
            echo "${kv%%=*} = '${value//\'/\'\'}'"
        done
    } | as_owner tee "$dir/data/racefree.conf" >/dev/null
}

check_settings() {
    local kv
    for kv in "$@"; do
        [[ "$kv" == *=* ]] || die "setting '$kv' is not NAME=VALUE"
        [[ "${kv%%=*}" =~ ^[A-Za-z_][A-Za-z0-9_.]*$ ]] || die "bad setting name in '$kv'"
    done
}

set_port() {
    local dir=$1 port=$2
    as_owner sed -i "s/^port = .*/port = $port/" "$dir/data/racefree.conf"
}

# Starts the postmaster on the port in racefree.conf; 0 when it is up.
launch() {
    local dir=$1 bin=$2
    : >"$dir/server.log"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/server.log"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$WAIT" start >/dev/null 2>&1
}

cmd_start() {
    local dir=$1 keep=$2
    shift 2
    local bin pid port
    check_settings "$@"
    bin=$(bindir)
    if [ "$keep" = 1 ] && [ ! -f "$dir/data/PG_VERSION" ]; then
        die "$dir: nothing to resume (start it first)"
    fi
    prepare_dir "$dir"
    dir=$(cd "$dir" && pwd -P)
    if pid=$(running_pid "$dir"); then
        [ $# -eq 0 ] || echo "pg.sh: $dir is already running; settings left unchanged" >&2
        url_for "$(cat "$dir/port")"
        return
    fi
    rm -f "$dir/pid"
    init_cluster "$dir" "$bin"
    # A postmaster.pid left by a killed server: pg_ctl would trust it.
    if [ -f "$dir/data/postmaster.pid" ]; then
        pid=$(head -n 1 "$dir/data/postmaster.pid")
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/data/postmaster.pid"
        fi
    fi
    port=""
    [ -f "$dir/port" ] && port=$(cat "$dir/port")
    if [ "$keep" = 1 ]; then
        if [ -z "$port" ] || [ ! -f "$dir/data/racefree.conf" ]; then
            die "$dir: nothing to resume (start it first)"
        fi
    else
        [ -n "$port" ] || port=$(pick_port)
        write_settings "$dir" "$port" "$@"
    fi
    local attempt
    for attempt in 1 2 3 4 5; do
        launch "$dir" "$bin" && break
        # Another process took the port since pick_port looked: take another.
        if [ "$attempt" -lt 5 ] && [ "$keep" = 0 ] &&
            grep -q "could not bind\|Address already in use" "$dir/server.log"; then
            port=$(pick_port)
            set_port "$dir" "$port"
            continue
        fi
        tail -n 20 "$dir/server.log" >&2
        die "server did not start on port $port (log: $dir/server.log)"
    done
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || die "server started but wrote no postmaster.pid"
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t "$WAIT" ||
        die "server on port $port not accepting connections (log: $dir/server.log)"
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    url_for "$port"
}

cmd_stop() {
    local dir=$1 pid i
    [ -d "$dir" ] || return 0 # nothing was ever started there
    dir=$(cd "$dir" && pwd -P)
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/pid"
        return 0
    fi
    # SIGINT is PostgreSQL's fast shutdown: abort sessions, checkpoint, exit.
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < WAIT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "pg.sh: postmaster $pid ignored SIGINT for ${WAIT}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$dir/pid"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
case "$cmd" in
start) cmd_start "$dir" 0 "$@" ;;
resume)
    [ $# -eq 0 ] || die "resume takes no settings (it keeps those of start)"
    cmd_start "$dir" 1
    ;;
stop | pause)
    [ $# -eq 0 ] || die "$cmd takes no settings"
    cmd_stop "$dir"
    ;;
*) usage ;;
esac
