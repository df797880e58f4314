#!/usr/bin/env python3
"""Load test for `kiln serve`: C concurrent clients each send R streamed completion
requests; prints requests/s, generated tokens/s, median latency and median time to first
token for each C. With --faults F, a fraction F of the requests disconnect at a random
point (before the answer or mid-stream); the server must keep answering the others.

    kiln serve -m MODEL --slots 16 &
    python scripts/load_test.py --base-url http://127.0.0.1:8080 --clients 1 16 64 [--faults 0.25]

Standard library only. After each run it reads /health and reports whether the server
went back to idle (no busy slot, nothing queued). Record results in BENCHMARKS.md with the
device and the command.
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
from urllib.parse import urlparse


def one_request(host, port, prompt, max_tokens, seed, leave_after):
    """Stream one completion; returns (latency, ttft, tokens) or None if it left early."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    if leave_after == 0:
        conn.sock.close()
        return None
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    ttft, tokens, events = None, 0, 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        v = json.loads(data)
        if "error" in v:
            raise RuntimeError(f"stream error: {v['error']['message']}")
        if v.get("usage"):
            tokens = v["usage"]["completion_tokens"]
        elif ttft is None:
            ttft = time.perf_counter() - t0
        events += 1
        if leave_after is not None and events >= leave_after:
            conn.sock.close()
            return None
    conn.close()
    return time.perf_counter() - t0, ttft, tokens


def run(host, port, clients, requests_per_client, max_tokens, faults, seed):
    latencies, ttfts, tokens, errors, left = [], [], [], [], 0
    lock = threading.Lock()
    rng = random.Random(seed)
    plan = [[(rng.randint(0, 8) if rng.random() < faults else None) for _ in range(requests_per_client)] for _ in range(clients)]

    def client(c):
        nonlocal left
        for r in range(requests_per_client):
            try:
                out = one_request(host, port, f"Request {c}.{r}: once upon a time", max_tokens, c * 1000 + r, plan[c][r])
                with lock:
                    if out is None:
                        left += 1
                    else:
                        latencies.append(out[0])
                        ttfts.append(out[1] or out[0])
                        tokens.append(out[2])
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
        "completed": len(latencies),
        "left_early": left,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 3),
        "tokens_per_s": round(sum(tokens) / wall, 2),
        "median_latency_s": round(statistics.median(latencies), 3) if latencies else None,
        "median_ttft_s": round(statistics.median(ttfts), 3) if ttfts else None,
    }


def health(host, port, wait_s=30.0):
    """The server's /health once it is idle again (or after wait_s)."""
    t0 = time.perf_counter()
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/health")
        h = json.loads(conn.getresponse().read())
        conn.close()
        idle = h.get("slots_busy") == 0 and h.get("queue_depth") == 0 and h.get("requests_in_flight") == 0
        if idle or time.perf_counter() - t0 > wait_s:
            return idle, h
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--faults", type=float, default=0.0, help="fraction of requests that disconnect at a random point")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    u = urlparse(args.base_url)
    host, port = u.hostname, u.port or 80
    print(f"{'clients':>7} {'done':>5} {'left':>5} {'errors':>6} {'wall s':>8} {'req/s':>8} {'tok/s':>8} "
          f"{'median s':>9} {'ttft s':>7} {'idle after':>10}")
    failed = False
    for c in args.clients:
        r = run(host, port, c, args.requests, args.max_tokens, args.faults, args.seed)
        idle, h = health(host, port)
        r["idle_after"] = idle
        print(f"{r['clients']:>7} {r['completed']:>5} {r['left_early']:>5} {r['errors']:>6} {r['wall_s']:>8} "
              f"{r['requests_per_s']:>8} {r['tokens_per_s']:>8} {r['median_latency_s']!s:>9} {r['median_ttft_s']!s:>7} "
              f"{idle!s:>10}")
        print(json.dumps(r))
        failed |= r["errors"] > 0 or not idle
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
