#!/usr/bin/env python3
"""Claims in flight while the container is stopped: is every request that reached the service
answered, and does the container end within its grace period?

Used by scripts/container-check.sh. Workers send claims for new users, one TCP connection per
claim (so no keep-alive race muddles the count), until the service stops accepting connections.
Once STORM_START_STOP_AFTER claims are answered, `podman stop -t GRACE CONTAINER` is run while
the workers keep going. Every claim ends as one of:
  answered  an HTTP status came back (any status: the service answered it);
  refused   the connection was refused (or reset during the handshake) after the stop began:
            the listener was closed, so the claim never reached the service (not in flight);
  dropped   the connection was accepted but closed or reset without an answer: before the
            request was sent in full (the connection sat in the listener's accept queue when
            it closed) or after (a claim lost in flight). Any dropped claim fails the check, as
            does a refusal before the stop.
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
refused_after_stop = 0
refused_before_stop = 0
dropped = []
next_user = 0
stop_began = threading.Event()
enough_answered = threading.Event()


def claim(user):
    """One claim on a fresh connection: ('answered', status, body) | ('refused',) |
    ('dropped', why), where why says whether the request had been sent in full."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=GRACE + 10)
    try:
        connection.connect()
    except (ConnectionRefusedError, ConnectionResetError):
        return ("refused",)
    stage = "reset before the request was sent in full"
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
        stage = "no answer after the request was sent"
        response = connection.getresponse()
        return ("answered", response.status, response.read())
    except (OSError, http.client.HTTPException) as error:
        return ("dropped", f"{user}: {stage}: {error!r}")
    finally:
        connection.close()


def worker():
    global next_user, refused_after_stop, refused_before_stop
    while True:
        with lock:
            if next_user >= MAX_CLAIMS:
                return
            user = f"storm-user-{next_user}"
            next_user += 1
        outcome = claim(user)
        with lock:
            if outcome[0] == "answered":
                statuses[outcome[1]] += 1
                if outcome[1] == 201:
                    codes.append(json.loads(outcome[2])["code"])
                if sum(statuses.values()) >= START_STOP_AFTER:
                    enough_answered.set()
            elif outcome[0] == "dropped":
                dropped.append(outcome[1])
            elif stop_began.is_set():
                refused_after_stop += 1
                return
            else:
                refused_before_stop += 1
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
    figures = {
        "claims_sent": next_user,
        "answered_by_status": {str(k): v for k, v in sorted(statuses.items())},
        "answered": sum(statuses.values()),
        "refused_after_stop_began": refused_after_stop,
        "refused_before_stop": refused_before_stop,
        "dropped_in_flight": len(dropped),
        "dropped_examples": dropped[:5],
        "distinct_codes_of_201": len(set(codes)),
        "podman_stop_seconds": round(stop_seconds, 2),
        "podman_stop_ok": stopped.returncode == 0,
        "container_exit_code": exit_code,
        "storm_seconds": round(time.monotonic() - storm_began, 2),
        "workers_still_running": sum(thread.is_alive() for thread in threads),
    }
    print(json.dumps(figures))
    holds = (
        not dropped
        and refused_before_stop == 0
        and len(set(codes)) == len(codes)
        and stopped.returncode == 0
        and stop_seconds < GRACE
        and exit_code == "0"
        and figures["workers_still_running"] == 0
    )
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
