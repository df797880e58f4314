#!/usr/bin/env python3
"""Load test for `kiln serve`: C concurrent clients each send R completion requests;
prints requests/s and aggregate generated tokens/s (from the `usage` counts) for each C.

    kiln serve -m MODEL --slots 16 &
    python scripts/load_test.py --base-url http://127.0.0.1:8080 --clients 1 4 16

Standard library only. Record results in BENCHMARKS.md with the device and the command.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlparse


def one_request(host, port, prompt, max_tokens, seed):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data}")
    return time.perf_counter() - t0, data["usage"]["completion_tokens"]


def run(host, port, clients, requests_per_client, max_tokens):
    latencies, tokens, errors = [], [], []
    lock = threading.Lock()

    def client(c):
        for r in range(requests_per_client):
            try:
                dt, n = one_request(host, port, f"Request {c}.{r}: once upon a time", max_tokens, c * 1000 + r)
                with lock:
                    latencies.append(dt)
                    tokens.append(n)
            except Exception as e:  # noqa: BLE001 — report, keep going
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 3),
        "tokens_per_s": round(sum(tokens) / wall, 2),
        "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    u = urlparse(args.base_url)
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'wall s':>8} {'req/s':>8} {'tok/s':>8} {'median s':>9}")
    for c in args.clients:
        r = run(u.hostname, u.port or 80, c, args.requests, args.max_tokens)
        print(f"{r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['wall_s']:>8} {r['requests_per_s']:>8} "
              f"{r['tokens_per_s']:>8} {r['median_latency_s']:>9}")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
