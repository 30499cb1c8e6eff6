#!/usr/bin/env python3
"""A claim storm for scripts/failover-drill.sh: WORKERS threads claim for new users through
the service instances (round robin, one keep-alive connection per thread) until the file
STOP_FILE appears, and write one JSON line per answer to OUT:
{"t": seconds since the epoch, "status": HTTP status or 0 (no answer), "user", "code"}.

Environment: STORM_BASES (comma-separated base URLs), STORM_CAMPAIGN, STORM_CLIENT_TOKEN,
STORM_WORKERS (16), STORM_STOP_FILE, STORM_OUT, STORM_MAX_SECONDS (120, a bound of its own).
"""
import http.client
import json
import os
import threading
import time
import urllib.parse

BASES = os.environ["STORM_BASES"].split(",")
CAMPAIGN = os.environ["STORM_CAMPAIGN"]
TOKEN = os.environ["STORM_CLIENT_TOKEN"]
WORKERS = int(os.environ.get("STORM_WORKERS", "16"))
STOP_FILE = os.environ["STORM_STOP_FILE"]
OUT = os.environ["STORM_OUT"]
MAX_SECONDS = float(os.environ.get("STORM_MAX_SECONDS", "120"))

lock = threading.Lock()
started = time.time()


def worker(index, out):
    base = urllib.parse.urlparse(BASES[index % len(BASES)])
    connection = None
    n = 0
    while not os.path.exists(STOP_FILE) and time.time() - started < MAX_SECONDS:
        user = f"drill-{index}-{n}"
        n += 1
        body = json.dumps({"user_id": user})
        status, code = 0, None
        try:
            if connection is None:
                connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
            connection.request(
                "POST",
                f"/v1/campaigns/{CAMPAIGN}/claims",
                body=body,
                headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
            )
            response = connection.getresponse()
            status = response.status
            payload = response.read()
            if status == 201:
                code = json.loads(payload)["code"]
        except (OSError, http.client.HTTPException):
            connection = None
            time.sleep(0.05)
        with lock:
            out.write(json.dumps({"t": time.time(), "status": status, "user": user, "code": code}) + "\n")
        if status == 503:
            time.sleep(0.05)


def main():
    with open(OUT, "w") as out:
        threads = [threading.Thread(target=worker, args=(i, out)) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


if __name__ == "__main__":
    main()
