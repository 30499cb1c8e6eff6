#!/usr/bin/env bash
# Makes sure the local MariaDB (or MySQL) answers and has the login the tests and benchmarks use:
# user `giftcodes` / password `giftcodes`, allowed to create and drop databases named
# `giftcodes_*`, and (for the outage tests) to create logins of its own on them, list and
# kill their connections. Needs the `mariadb` (or `mysql`) client and root access over the local socket,
# as on a Debian install. Idempotent.
set -euo pipefail

client=$(command -v mariadb || command -v mysql || true)
if [ -z "$client" ]; then
  echo "mariadb-test-login: no mariadb/mysql client on PATH (apt-get install mariadb-client)" >&2
  exit 1
fi
if ! "$client" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
  cat >&2 <<'MSG'
mariadb-test-login: MariaDB does not answer as root on the local socket.
Start it with:
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
then run this again.
MSG
  exit 1
fi
"$client" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'giftcodes'@'localhost' IDENTIFIED BY 'giftcodes';
CREATE USER IF NOT EXISTS 'giftcodes'@'127.0.0.1' IDENTIFIED BY 'giftcodes';
GRANT ALL PRIVILEGES ON `giftcodes\_%`.* TO 'giftcodes'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON `giftcodes\_%`.* TO 'giftcodes'@'127.0.0.1' WITH GRANT OPTION;
GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO 'giftcodes'@'localhost';
GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO 'giftcodes'@'127.0.0.1';
SQL
