#!/usr/bin/env python3
"""Talk to a running `kiln serve` with the official OpenAI Python client, unchanged:
completions and chat completions, plain and streamed, with logprobs and usage.

    kiln serve -m $(kiln fetch smollm2) --port 8080 &
    python scripts/openai_client_check.py --base-url http://127.0.0.1:8080/v1

Needs `pip install openai`. Exits non-zero if any answer is malformed.
"""
import argparse
import sys

from openai import OpenAI


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--max-tokens", type=int, default=12)
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="unused")
    model = client.models.list().data[0].id
    print(f"model: {model}")

    c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=args.max_tokens,
                                  temperature=0.7, seed=1, logprobs=2)
    print("completion:", repr(c.choices[0].text), c.choices[0].finish_reason, c.usage)
    assert c.usage.completion_tokens >= 1 and len(c.choices[0].logprobs.tokens) == c.usage.completion_tokens

    streamed = "".join(ch.choices[0].text for ch in client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=args.max_tokens, temperature=0.7, seed=1,
        stream=True) if ch.choices)
    print("streamed completion:", repr(streamed))
    assert streamed == c.choices[0].text, "streamed and plain completions differ for the same seed"

    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Name a color."}]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens, seed=2,
                                       logprobs=True, top_logprobs=3)
    print("chat:", repr(r.choices[0].message.content), r.choices[0].finish_reason, r.usage)
    assert r.choices[0].message.role == "assistant" and len(r.choices[0].logprobs.content[0].top_logprobs) == 3

    parts = []
    usage = None
    for ch in client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens, seed=2,
                                             stream=True, stream_options={"include_usage": True}):
        if ch.usage:
            usage = ch.usage
        if ch.choices and ch.choices[0].delta.content:
            parts.append(ch.choices[0].delta.content)
    print("streamed chat:", repr("".join(parts)), usage)
    assert "".join(parts) == r.choices[0].message.content, "streamed and plain chat differ for the same seed"
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens

    try:
        client.completions.create(model=model, prompt="x", max_tokens=4, temperature=-1)
        raise AssertionError("temperature -1 was accepted")
    except Exception as e:  # openai.BadRequestError
        print("bad request rejected:", type(e).__name__, str(e)[:100])
        assert getattr(e, "status_code", None) == 400
    print("OK: the OpenAI client works against kiln serve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
