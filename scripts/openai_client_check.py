#!/usr/bin/env python3
"""Talk to a running `kiln serve` with the official OpenAI Python client, unchanged:
completions and chat completions, plain and streamed, with logprobs, echo, n > 1, usage
and the API key.

    kiln serve -m $(kiln fetch smollm2) --port 8080 --api-key sesame &
    python scripts/openai_client_check.py --base-url http://127.0.0.1:8080/v1 --api-key sesame

Needs `pip install openai`. Exits non-zero if any answer is malformed.
"""
import argparse
import sys

from openai import OpenAI


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--api-key", default=None, help="the server's --api-key (also checks a wrong key is refused)")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key or "unused", max_retries=0)
    if args.api_key:
        import openai
        try:
            OpenAI(base_url=args.base_url, api_key="wrong-key", max_retries=0).models.list()
            raise AssertionError("a wrong API key was accepted")
        except openai.AuthenticationError as e:
            print("wrong API key refused:", e.status_code)
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

    # lm-evaluation-harness' scoring request: the prompt's own log-probs (the first is None).
    e = client.completions.create(model=model, prompt="The capital of France is Paris", max_tokens=1, temperature=0,
                                  logprobs=1, echo=True)
    lp = e.choices[0].logprobs
    print("echo:", repr(e.choices[0].text), "token_logprobs:", [None if x is None else round(x, 3) for x in lp.token_logprobs])
    assert lp.token_logprobs[0] is None and all(x is not None for x in lp.token_logprobs[1:])
    assert e.choices[0].text.startswith("The capital of France is Paris") and len(lp.tokens) == e.usage.prompt_tokens + 1
    # The same streamed: the prompt comes first, then the token; joined they are the plain answer.
    text, tokens = "", []
    for ch in client.completions.create(model=model, prompt="The capital of France is Paris", max_tokens=1,
                                        temperature=0, logprobs=1, echo=True, stream=True):
        text += ch.choices[0].text
        tokens += ch.choices[0].logprobs.tokens if ch.choices[0].logprobs else []
    print("streamed echo:", repr(text))
    assert text == e.choices[0].text and tokens == lp.tokens, "streamed and plain echo differ"

    n = client.completions.create(model=model, prompt="Once upon a time", max_tokens=args.max_tokens, seed=3, n=3,
                                  temperature=0.9)
    print("n=3:", [repr(ch.text) for ch in sorted(n.choices, key=lambda ch: ch.index)])
    assert sorted(ch.index for ch in n.choices) == [0, 1, 2]
    texts = {}
    for ch in client.completions.create(model=model, prompt="Once upon a time", max_tokens=args.max_tokens, seed=3, n=3,
                                        temperature=0.9, stream=True):
        for c in ch.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert [texts[i] for i in range(3)] == [ch.text for ch in sorted(n.choices, key=lambda ch: ch.index)], \
        "streamed n=3 differs from plain n=3"
    chat_n = client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens, seed=2, n=2)
    assert len(chat_n.choices) == 2 and chat_n.choices[0].message.content == r.choices[0].message.content
    print("chat n=2:", [repr(ch.message.content) for ch in chat_n.choices])

    try:
        client.completions.create(model=model, prompt="x", max_tokens=4, temperature=-1)
        raise AssertionError("temperature -1 was accepted")
    except Exception as e:  # openai.BadRequestError
        print("bad request rejected:", type(e).__name__, str(e)[:100])
        assert getattr(e, "status_code", None) == 400
        assert e.body.get("param") == "temperature", e.body
    print("OK: the OpenAI client works against kiln serve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
