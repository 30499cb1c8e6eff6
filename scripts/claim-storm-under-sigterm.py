#!/usr/bin/env python3
"""Claims in flight while the container is stopped: is every claim sent before the stop
answered, and does the container end within its grace period?

Used by scripts/container-check.sh. Workers send claims for new users, one TCP connection per
claim (so no keep-alive race muddles the count), until the service stops accepting connections.
Once STORM_START_STOP_AFTER claims are answered, `podman stop -t GRACE CONTAINER` is run while
the workers keep going. Each claim is counted by when it was sent (before the stop began, so
in flight when SIGTERM arrives, or while stopping) and how it ended:
  answered  an HTTP status came back (any status: the service answered it);
  refused   the connection was refused (or reset during the handshake): the listener was closed;
  reset     the connection was made but closed or reset with no answer, whether before the
            request was sent in full or after.
The check holds when every claim sent before the stop was answered, the 201 codes are
distinct, and the container exited with code 0 before the grace period ran out. Claims sent
while stopping are reported, not judged: those that race the listener's close can be reset by
the kernel (a connection queued but never accepted) unless the service keeps accepting for a
while after SIGTERM.
Prints one JSON line of figures on stdout; exit 0 when the check holds.

Environment: STORM_PORT, STORM_CAMPAIGN, STORM_CLIENT_TOKEN, STORM_CONTAINER, STORM_GRACE
(seconds, default 25), STORM_WORKERS (32), STORM_START_STOP_AFTER (200), STORM_MAX_CLAIMS (20000).
"""
import collections
import http.client
import json
import os
import subprocess
import sys
import threading
import time

PORT = int(os.environ["STORM_PORT"])
CAMPAIGN = os.environ["STORM_CAMPAIGN"]
TOKEN = os.environ["STORM_CLIENT_TOKEN"]
CONTAINER = os.environ["STORM_CONTAINER"]
GRACE = int(os.environ.get("STORM_GRACE", "25"))
WORKERS = int(os.environ.get("STORM_WORKERS", "32"))
START_STOP_AFTER = int(os.environ.get("STORM_START_STOP_AFTER", "200"))
MAX_CLAIMS = int(os.environ.get("STORM_MAX_CLAIMS", "20000"))

lock = threading.Lock()
statuses = collections.Counter()
codes = []
# outcomes["sent_before_stop" | "sent_while_stopping"]["answered" | "refused" | "reset"]
outcomes = {"sent_before_stop": collections.Counter(), "sent_while_stopping": collections.Counter()}
reset_examples = []
next_user = 0
stop_began = threading.Event()
enough_answered = threading.Event()


def claim(user):
    """One claim on a fresh connection: ('answered', status, body) | ('refused',) |
    ('reset', why), where why says whether the request had been sent in full."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=GRACE + 10)
    try:
        connection.connect()
    except (ConnectionRefusedError, ConnectionResetError):
        return ("refused",)
    stage = "before the request was sent in full"
    try:
        connection.request(
            "POST",
            f"/v1/campaigns/{CAMPAIGN}/claims",
            body=json.dumps({"user_id": user}),
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
                "Connection": "close",
            },
        )
        stage = "after the request was sent"
        response = connection.getresponse()
        return ("answered", response.status, response.read())
    except (OSError, http.client.HTTPException) as error:
        return ("reset", f"{user}: {stage}: {error!r}")
    finally:
        connection.close()


def worker():
    global next_user
    while True:
        with lock:
            if next_user >= MAX_CLAIMS:
                return
            user = f"storm-user-{next_user}"
            next_user += 1
        sent = "sent_while_stopping" if stop_began.is_set() else "sent_before_stop"
        outcome = claim(user)
        with lock:
            outcomes[sent][outcome[0]] += 1
            if outcome[0] == "answered":
                statuses[outcome[1]] += 1
                if outcome[1] == 201:
                    codes.append(json.loads(outcome[2])["code"])
                if sum(statuses.values()) >= START_STOP_AFTER:
                    enough_answered.set()
            elif outcome[0] == "reset":
                reset_examples.append(f"{sent}: {outcome[1]}")
            else:
                return


def main():
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    storm_began = time.monotonic()
    for thread in threads:
        thread.start()
    if not enough_answered.wait(timeout=60):
        print(json.dumps({"error": f"fewer than {START_STOP_AFTER} claims answered in 60 s"}))
        return 1
    stop_began.set()
    stop_started = time.monotonic()
    stopped = subprocess.run(
        ["podman", "stop", "-t", str(GRACE), CONTAINER], capture_output=True, text=True
    )
    stop_seconds = time.monotonic() - stop_started
    for thread in threads:
        thread.join(timeout=GRACE + 15)
    exit_code = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.ExitCode}}", CONTAINER],
        capture_output=True,
        text=True,
    ).stdout.strip()
    before = outcomes["sent_before_stop"]
    figures = {
        "claims_sent": next_user,
        "sent_before_stop": dict(before),
        "sent_while_stopping": dict(outcomes["sent_while_stopping"]),
        "answered_by_status": {str(k): v for k, v in sorted(statuses.items())},
        "distinct_codes_of_201": len(set(codes)),
        "reset_examples": reset_examples[:5],
        "podman_stop_seconds": round(stop_seconds, 2),
        "podman_stop_ok": stopped.returncode == 0,
        "container_exit_code": exit_code,
        "storm_seconds": round(time.monotonic() - storm_began, 2),
        "workers_still_running": sum(thread.is_alive() for thread in threads),
    }
    print(json.dumps(figures))
    holds = (
        before["refused"] == 0
        and before["reset"] == 0
        and len(set(codes)) == len(codes)
        and stopped.returncode == 0
        and stop_seconds < GRACE
        and exit_code == "0"
        and figures["workers_still_running"] == 0
    )
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
