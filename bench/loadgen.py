"""A bounded HTTP load from its own process: C threads, D seconds, one method and path.

Prints one JSON line {requests, errors, seconds, rps, p50Ms, p99Ms, serverP50Ms, serverP99Ms}
(the server-side figures from the API's `Server-Timing: app;dur=` header). Used by
bench/api_load.py and bench/run_list.py.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default=None)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    latencies: list[float] = []
    server: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = http.request(args.method, args.url, content=args.body)
                elapsed = time.perf_counter() - started
                timing = response.headers.get("server-timing", "")
                with lock:
                    latencies.append(elapsed)
                    if "dur=" in timing:
                        server.append(float(timing.split("dur=", 1)[1].split(",")[0]) / 1000)
                    errors[0] += response.status_code >= 400

    started = time.monotonic()
    threads = [threading.Thread(target=load) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    ordered = sorted(latencies)
    on_server = sorted(server)

    def pick(q: float, values: list[float] = ordered) -> float | None:
        if not values:
            return None
        return round(1000 * values[min(len(values) - 1, round(q * (len(values) - 1)))], 1)

    print(
        json.dumps(
            {
                "requests": len(ordered),
                "errors": errors[0],
                "seconds": round(seconds, 2),
                "rps": round(len(ordered) / seconds, 1),
                "p50Ms": pick(0.5),
                "p99Ms": pick(0.99),
                "serverP50Ms": pick(0.5, on_server),
                "serverP99Ms": pick(0.99, on_server),
            }
        )
    )


if __name__ == "__main__":
    main()
