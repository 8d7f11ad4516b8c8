"""Tokens per second of the local llama.cpp build (extra ``local-llm``) on the embedded GGUF model.

Each run is a child process: a build that uses instructions this CPU cannot execute (issue 7: ``-march=native``
on a virtual machine) dies with SIGILL, and the benchmark must report that instead of dying with it.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROMPT = (
    "Frage an das Bürgerbüro der Stadt Musterstadt: Ich bin umgezogen und möchte meinen Wohnsitz anmelden. "
    "Welche Unterlagen brauche ich, wie lange habe ich dafür Zeit, und kann ich einen Termin online buchen? "
    "Antwort:"
)
CHILD_TIMEOUT_S = 120.0


@dataclass
class ThroughputRun:
    prompt_tokens: int
    prompt_tokens_per_s: float
    generated_tokens: int
    generated_tokens_per_s: float


def measure_once(model: Path, threads: int, max_tokens: int) -> ThroughputRun:
    """One load, then a greedy generation: the first token's time is the prompt's, the rest is generation."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=1024, n_threads=threads, verbose=False, seed=1)
    tokens = llm.tokenize(PROMPT.encode())
    generated = 0
    started = time.perf_counter()
    first_token_at = started
    for token in llm.generate(tokens, temp=0.0):
        generated += 1
        if generated == 1:
            first_token_at = time.perf_counter()
        if generated >= max_tokens or token == llm.token_eos():
            break
    finished = time.perf_counter()
    prompt_s = first_token_at - started
    generate_s = max(finished - first_token_at, 1e-9)
    return ThroughputRun(len(tokens), len(tokens) / prompt_s, generated - 1, (generated - 1) / generate_s)


def system_info() -> str:
    """The instruction sets this llama.cpp build was compiled to use (``AVX2 = 1 | AVX512 = 0 | ...``)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    return (info.decode() if isinstance(info, bytes) else str(info)).strip()


def run_child(model: Path, threads: int, max_tokens: int) -> ThroughputRun | str:
    """A run in a child process; a string says why it failed (crash signal, exit code, last error line)."""
    command = [sys.executable, "-m", __name__, str(model), str(threads), str(max_tokens)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"no result within {CHILD_TIMEOUT_S:.0f} s"
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        hint = (
            " (illegal instruction: this build uses instructions the CPU cannot run)"
            if name == "SIGILL"
            else ""
        )
        return f"the llama.cpp child died with {name}{hint}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the llama.cpp child exited with {done.returncode}: {last}"
    return ThroughputRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_llm_bench(model: Path, *, runs: int, threads: int, max_tokens: int) -> dict[str, object]:
    """Median prompt and generation tokens/s over ``runs`` child processes, plus the build's instruction sets."""
    results: list[ThroughputRun] = []
    failure: str | None = None
    for _ in range(runs):
        outcome = run_child(model, threads, max_tokens)
        if isinstance(outcome, str):
            failure = outcome
            break
        results.append(outcome)
    summary: dict[str, object] = {"model": model.name, "threads": threads, "runs": len(results)}
    if failure is not None:
        summary["error"] = failure
    if results:
        summary["prompt_tokens"] = results[0].prompt_tokens
        summary["prompt_tokens_per_s"] = round(statistics.median(r.prompt_tokens_per_s for r in results), 1)
        summary["generated_tokens"] = results[0].generated_tokens
        summary["generated_tokens_per_s"] = round(
            statistics.median(r.generated_tokens_per_s for r in results), 1
        )
    return summary


if __name__ == "__main__":  # the child: one measurement, printed as one JSON line
    run = measure_once(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(run.__dict__))
