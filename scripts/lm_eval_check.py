#!/usr/bin/env python3
"""lm-evaluation-harness against `kiln serve`, compared with `kiln eval` and `kiln score`.

Runs lm-eval's `local-completions` model, pointed at a `kiln serve` this script starts, on
tests/fixtures/eval/tiny_mc.jsonl (task tests/fixtures/lm_eval_task/kiln_tiny_mc.yaml), then
`kiln eval --json` on the same file and `kiln score --context C --answer A` on every
(context, continuation) lm-eval scored, and checks that all three give the same per-choice
log-likelihoods (within --tolerance) and that lm-eval and kiln eval give the same acc and
acc_norm, with their standard errors. lm-eval tokenizes through the server (`tokenizer_backend=remote`: /tokenizer_info,
/tokenize) and sends token-id prompts with echo and logprobs (the prompt log-prob path
of /v1/completions). Exits non-zero on any difference.

    cargo build --release -p kiln-cli
    python3 scripts/lm_eval_check.py [--model DIR_OR_GGUF]

Needs lm-eval importable (with its dependencies from wheels). Three of its dependencies
ship no wheel (sqlitedict, rouge-score, word2number); this check uses none of them, so
where they are missing put stand-ins on PYTHONPATH, e.g. a `sqlitedict.py` defining a
`SqliteDict` class (only lm-eval's --use_cache uses it), an empty `word2number.py` and an
empty `rouge_score/` package with `rouge_scorer.py` and `scoring.py`. docs/serving.md
and docs/eval.md record a run.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILN = os.path.join(ROOT, "target", "release", "kiln")
TASK_DIR = os.path.join(ROOT, "tests", "fixtures", "lm_eval_task")
TASK_FILE = os.path.join("tests", "fixtures", "eval", "tiny_mc.jsonl")


def start_server(model):
    proc = subprocess.Popen([KILN, "serve", "-m", model, "--port", "0", "--slots", "2", "--kv-cache", "f32"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "http://127.0.0.1:" in line:
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, port
    raise RuntimeError("kiln serve exited before listening")


def request_args(sample, j):
    """The (context, continuation) lm-eval scored for choice j of a logged sample."""
    args = sample["arguments"]
    if isinstance(args, dict):  # {"gen_args_0": {"arg_0": context, "arg_1": continuation}, ...}
        a = args[f"gen_args_{j}"]
        return a["arg_0"], a["arg_1"]
    return args[j][0], args[j][1]


def kiln_score(model, context, answer):
    """`kiln score --context C --answer A`'s answer log-likelihood."""
    out = subprocess.run([KILN, "score", "-m", model, "--context", context, "--answer", answer, "--kv-cache", "f32",
                          "--json", "-q"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["answer_logprob"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "fixtures", "models", "qwen2-tiny-tied-f32"))
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    os.chdir(ROOT)  # the task's data file path is relative to the repository root
    import lm_eval
    from lm_eval.tasks import TaskManager

    proc, port = start_server(args.model)
    try:
        results = lm_eval.simple_evaluate(
            model="local-completions",
            model_args={"base_url": f"http://127.0.0.1:{port}/v1/completions", "model": "kiln",
                        "num_concurrent": 1, "max_retries": 1, "tokenized_requests": True,
                        "tokenizer_backend": "remote"},
            tasks=["kiln_tiny_mc"],
            task_manager=TaskManager(include_path=TASK_DIR),
            log_samples=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    kiln = json.loads(subprocess.run([KILN, "eval", "-m", args.model, "--task", TASK_FILE, "--kv-cache", "f32", "--json"],
                                     check=True, capture_output=True, text=True).stdout)

    worst, rows, bad = 0.0, 0, []
    print(f"{'item':<14} {'choice':<10} {'lm-eval':>12} {'kiln eval':>12} {'kiln score':>12} {'diff':>9}")
    with open(TASK_FILE) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    for sample in sorted(results["samples"]["kiln_tiny_mc"], key=lambda s: s["doc_id"]):
        doc = docs[sample["doc_id"]]
        mine = kiln["results"][sample["doc_id"]]["choices"]  # kiln eval keeps the file's order
        name = str(doc.get("id", sample["doc_id"]))
        for j, resp in enumerate(sample["resps"]):
            ll = resp[0][0]
            want = mine[j]["loglikelihood"]
            context, answer = request_args(sample, j)
            scored = kiln_score(args.model, context, answer)
            diff = max(abs(ll - want), abs(ll - scored))
            worst = max(worst, diff)
            rows += 1
            print(f"{name:<14} {doc['choices'][j]!r:<10} {ll:>12.6f} {want:>12.6f} {scored:>12.6f} {diff:>9.2e}")
    if rows == 0 or worst > args.tolerance:
        bad.append(f"log-likelihoods: largest difference {worst:.2e} over {rows} choices (tolerance {args.tolerance:g})")
    r = results["results"]["kiln_tiny_mc"]
    for metric in ["acc", "acc_norm"]:
        theirs, their_se = r[f"{metric},none"], r[f"{metric}_stderr,none"]
        ours, our_se = kiln[metric]["value"], kiln[metric]["stderr"]
        print(f"{metric:<9} lm-eval {theirs:.4f} ± {their_se:.4f}   kiln eval {ours:.4f} ± {our_se:.4f}")
        if not (math.isclose(theirs, ours, abs_tol=1e-9) and math.isclose(their_se, our_se, abs_tol=1e-9)):
            bad.append(f"{metric}: lm-eval {theirs} ± {their_se}, kiln eval {ours} ± {our_se}")
    print(f"{rows} choices, largest log-likelihood difference {worst:.2e}")
    if bad:
        print("FAIL: " + "; ".join(bad))
        return 1
    print("OK: lm-eval through kiln serve, kiln eval and kiln score give the same log-likelihoods; acc and acc_norm agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
