"""A bounded HTTP load from its own process: C threads, D seconds, one method and path.

Prints one JSON line {requests, errors, seconds, rps, p50Ms, p99Ms}. Used by bench/api_load.py.
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
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = http.request(args.method, args.url, content=args.body)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += response.status_code >= 400

    started = time.monotonic()
    threads = [threading.Thread(target=load) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    print(
        json.dumps(
            {
                "requests": len(ordered),
                "errors": errors[0],
                "seconds": round(seconds, 2),
                "rps": round(len(ordered) / seconds, 1),
                "p50Ms": pick(0.5),
                "p99Ms": pick(0.99),
            }
        )
    )


if __name__ == "__main__":
    main()
