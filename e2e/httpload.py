"""A small HTTP load client for the end-to-end tests: one JSON line per request on stdout.

Every request uses a fresh TCP connection (a new source port, so a new flow), in sequence,
at most `--rate` per second. Each line: {"n", "start", "end", "ok", "server", "error"}, times
from time.monotonic() of this process (the test runs it in another network namespace, but
the monotonic clock is the machine's, so the times compare with the test's own).

    python3 httpload.py --url http://[2001:db8:100::1]/ --count 1000 --rate 200
    python3 httpload.py --url ... --seconds 10            # until the time is up
    python3 httpload.py --url ... --hold 3 --seconds 10   # also keep 3 keep-alive
                                                          # connections, one request/s each
"""

import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def one(host, port, path, timeout):
    """(ok, server, error, local port) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    local = None
    try:
        conn.connect()
        local = conn.sock.getsockname()[1]
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read().decode(errors="replace").strip()
        return r.status == 200, body, None, local
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        return False, None, f"{type(e).__name__}: {e}", local
    finally:
        conn.close()


def emit(lock, record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def hold(idx, host, port, path, until, timeout, lock):
    """One keep-alive connection, one request per second on it, until `until`."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    n = 0
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            # The local port tells whether http.client had to reconnect (a new flow).
            local = conn.sock.getsockname()[1] if conn.sock else None
            emit(lock, {"held": idx, "n": n, "start": start, "end": time.monotonic(), "ok": r.status == 200,
                        "server": body, "error": None, "port": local})
        except Exception as e:  # noqa: BLE001
            emit(lock, {"held": idx, "n": n, "start": start, "end": time.monotonic(), "ok": False,
                        "server": None, "error": f"{type(e).__name__}: {e}"})
            return
        n += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--hold", type=int, default=0)
    a = ap.parse_args()
    u = urlsplit(a.url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    lock = threading.Lock()
    t0 = time.monotonic()
    until = t0 + a.seconds if a.seconds else float("inf")
    holders = [threading.Thread(target=hold, args=(i, host, port, path, until if a.seconds else t0 + 3600,
                                                   a.timeout, lock), daemon=True) for i in range(a.hold)]
    for h in holders:
        h.start()
    n = 0
    gap = 1.0 / a.rate if a.rate > 0 else 0.0
    while (a.count == 0 or n < a.count) and time.monotonic() < until:
        start = time.monotonic()
        ok, server, error, local = one(host, port, path, a.timeout)
        emit(lock, {"n": n, "start": start, "end": time.monotonic(), "ok": ok, "server": server, "error": error,
                    "port": local})
        n += 1
        next_at = t0 + n * gap
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for h in holders:
        h.join()


if __name__ == "__main__":
    main()
