# Helpers shared by the bench scripts (sourced, not run). The caller sets DB_USER, DB_PASS,
# DB_HOST, DB_PORT and defines die().

# The MariaDB client logged in as the bench user, tab-separated, no headers.
sql() { mariadb -u"$DB_USER" -p"$DB_PASS" -h"$DB_HOST" -P"$DB_PORT" --batch --skip-column-names "$@"; }

# A port below the kernel's ephemeral range (so no outgoing connection can take it meanwhile)
# with no socket on it in any state.
free_port() {
  local low port
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 100); do
    port=$(( 20000 + RANDOM % (low - 20000) ))
    if ! ss -Htan "sport = :$port" | grep -q .; then echo "$port"; return; fi
  done
  die "no free port found"
}

# A fresh bearer token with the given prefix.
bench_token() { echo "$1-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }

# CPU seconds (user + system) a process has used so far; 0 when there is no such process.
cpu_seconds() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
