"""Before/after of `voicebot bench sip` in one run: the same calls against servers from two source trees, alternating.

    python -m voicebot.benchmarks.sip_ab --before ../before-checkout --after . --concurrency 6,8,10,12,14 --rounds 2

Each (concurrency, tree) pair is measured ``rounds`` times in the order A B A B ..., so that load from other
programs on a shared machine falls on both alike. Calls per run: 2 × concurrency. Prints one JSON line per run and
a Markdown table at the end (p50/p95 of set-up and voice-to-voice over the runs' calls pooled per pair).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from voicebot.benchmarks.sip import run_sip_benchmark
from voicebot.settings import Settings


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _main(trees: dict[str, Path], levels: list[int], rounds: int, out: Path | None) -> None:
    settings = Settings()
    rows: list[dict[str, Any]] = []
    for concurrency in levels:
        for round_index in range(rounds):
            order = list(trees.items()) if round_index % 2 == 0 else list(reversed(trees.items()))
            for label, tree in order:
                load_before = _load()
                report = await run_sip_benchmark(
                    settings, calls=2 * concurrency, concurrency=concurrency, server_dir=tree
                )
                row = {
                    "code": label,
                    "round": round_index + 1,
                    "load_before": load_before,
                    "load_after": _load(),
                    **{k: v for k, v in report.items() if k != "answers"},
                    "heard": sorted({a["heard"] or "" for a in report["answers"]}),
                }
                rows.append(row)
                line = json.dumps(row, ensure_ascii=False)
                print(line, flush=True)
                if out is not None:
                    with out.open("a") as handle:
                        handle.write(line + "\n")
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | calls | code | set-up p50 / p95 | voice-to-voice p50 / p95 | failed "
        "| server CPU per call (event loop) | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row_key in sorted(
        {(r["concurrency"], r["code"]) for r in rows}, key=lambda k: (k[0], k[1] != "before")
    ):
        runs = [r for r in rows if (r["concurrency"], r["code"]) == row_key]
        setup = " · ".join(f"{r['call_setup_ms']['p50']} / {r['call_setup_ms']['p95']}" for r in runs)
        v2v = " · ".join(f"{r['voice_to_voice_ms']['p50']} / {r['voice_to_voice_ms']['p95']}" for r in runs)
        failed = " · ".join(str(r["failed_calls"]) for r in runs)
        cpu = " · ".join(_cpu_per_call(r) for r in runs)
        load = " · ".join(r["load_before"].split()[0] for r in runs)
        lines.append(
            f"| {row_key[0]} | {runs[0]['calls']} | {row_key[1]} | {setup} ms | {v2v} ms | {failed} | {cpu} "
            f"| {load} |"
        )
    return "\n".join(lines)


def _cpu_per_call(row: dict[str, Any]) -> str:
    cpu = row.get("server_cpu_s") or {}
    if "total" not in cpu:
        return "–"
    return f"{cpu['total'] / row['calls']:.2f} s ({cpu['event_loop'] / row['calls']:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="source tree of the code before (required to measure)")
    parser.add_argument("--after", type=Path, default=Path.cwd(), help="source tree of the code after")
    parser.add_argument("--concurrency", default="6,8,10,12,14", help="comma-separated levels")
    parser.add_argument("--rounds", type=int, default=2, help="runs per tree and level (alternating)")
    parser.add_argument("--out", type=Path, help="also append each run's JSON line to this file")
    parser.add_argument("--table", type=Path, help="only print the table of an earlier --out file")
    args = parser.parse_args()
    if args.table is not None:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return
    if args.before is None:
        raise SystemExit("--before is needed: the source tree of the code before")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        if not (tree / "voicebot" / "cli.py").is_file():
            raise SystemExit(f"not a voicebot source tree: {tree}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    levels = [int(level) for level in args.concurrency.split(",")]
    asyncio.run(_main(trees, levels, args.rounds, args.out))


if __name__ == "__main__":
    main()
