#!/usr/bin/env python3
"""How long a running stream stalls while a long prompt joins (issue 14's measure of
chunked prefill interleaved with decode).

    python3 scripts/prefill_gap.py --url http://127.0.0.1:8080 [--long 1500] [--tokens 160]

Starts one streamed completion (`--tokens` tokens, greedy), waits for its first 16 tokens,
then sends a second, non-streamed request whose prompt is `--long` token ids (max_tokens 1)
and reads the stream to its end. Prints the gaps between consecutive tokens of the stream:
the median before the long request was sent, and the longest after it (the stall the
long prompt's prefill causes). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request


def post(url: str, body: dict, timeout: float = 3600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--long", type=int, default=1500, help="positions of the joining prompt")
    ap.add_argument("--tokens", type=int, default=160, help="tokens of the running stream")
    ap.add_argument("--id", type=int, default=1000, help="the token id the long prompt repeats")
    args = ap.parse_args()

    stream = post(f"{args.url}/v1/completions", {
        "prompt": "Once upon a time", "max_tokens": args.tokens, "temperature": 0, "stream": True,
    })
    times: list[float] = []
    sent_at = None
    long_done = {}

    def long_request():
        t0 = time.monotonic()
        with post(f"{args.url}/v1/completions", {"prompt": [args.id] * args.long, "max_tokens": 1, "temperature": 0}) as r:
            r.read()
        long_done["seconds"] = time.monotonic() - t0

    worker = threading.Thread(target=long_request)
    for raw in stream:
        line = raw.decode().strip()
        if not line.startswith("data:") or line == "data: [DONE]":
            continue
        times.append(time.monotonic())
        if len(times) == 16:
            sent_at = times[-1]
            worker.start()
    worker.join()
    gaps = [(b - a, b) for a, b in zip(times, times[1:])]
    before = [g for g, t in gaps if t <= sent_at]
    after = [g for g, t in gaps if t > sent_at]
    print(json.dumps({
        "stream_tokens": len(times),
        "long_prompt": args.long,
        "median_gap_before_ms": round(1000 * statistics.median(before), 1),
        "longest_gap_after_ms": round(1000 * max(after), 1),
        "long_request_s": round(long_done.get("seconds", float("nan")), 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
