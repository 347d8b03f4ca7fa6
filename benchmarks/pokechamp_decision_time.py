"""PokéChamp decision time per turn: the minimax player (K = 2, and deeper) vs. the baselines, on real battles.

    python benchmarks/pokechamp_decision_time.py [--battles 6] [--depths 2,3] [--model none]
                                                 [--turn-budget 5] [--out FILE]

Starts a local Showdown server (``paperlab.pokechamp.server``), plays ``--battles`` gen9 random battles of each
player against the random player one at a time (concurrency 1, so no battle's decisions wait on another's), and
records the wall time of every ``choose_move`` call. ``--model none`` (default) times the search itself with
every LLM call falling back (damage calculator, heuristic switch, hp-difference leaves); ``--model default``
adds the offline SmolLM2-135M under ``--turn-budget`` seconds per decision (its calls dominate: seconds each on
2 CPU cores). Run it alone on an idle machine.

Writes ``benchmarks/pokechamp_decision_time.json``: per player (and depth) the number of decisions, mean /
median / p95 / max milliseconds, a bootstrap interval of the mean, and the ratio of PokéChamp's mean to
max-damage's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=6)
    ap.add_argument("--depths", default="2,3")
    ap.add_argument("--model", default="none")
    ap.add_argument("--turn-budget", type=float, default=5.0)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args()

    from paperlab.core.stats import bootstrap_ci
    from paperlab.pokechamp.battles import decision_stats, play_matchup
    from paperlab.pokechamp.minimax import Advisor
    from paperlab.pokechamp.server import ShowdownServer

    lm = None
    if args.model != "none":
        from paperlab.core.models import load_lm

        lm = load_lm(args.model)
    runs = [("random", 2), ("max_base_power", 2), ("max_damage", 2), ("heuristic", 2)]
    runs += [("pokechamp", int(d)) for d in args.depths.split(",")]
    results: dict[str, dict] = {}
    raw: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    with ShowdownServer() as server:
        for name, depth in runs:
            key = name if name != "pokechamp" else f"pokechamp_K{depth}"
            advisor = Advisor(lm, turn_budget_s=args.turn_budget) if name == "pokechamp" else None
            recs = play_matchup(server.server_configuration(), name, "random", args.battles, concurrency=1,
                                chunk=args.battles, chunk_timeout_s=3600, advisor=advisor, depth=depth)
            times = [x for r in recs for x in r["decision_s"]]
            raw[key] = times
            st = decision_stats(times)
            ci = bootstrap_ci(times, n_boot=2000).as_dict() if len(times) > 1 else None
            results[key] = {k: (v * 1000 if k != "n" else v) for k, v in st.items()} | {
                "mean_ms_ci": {k: (v * 1000 if isinstance(v, float) and k in ("value", "lo", "hi") else v)
                               for k, v in ci.items()} if ci else None,
                "wins": sum(bool(r["won"]) for r in recs if r["finished"]),
                "llm": advisor.snapshot() if advisor is not None else None}
            print(key, json.dumps({k: results[key][k] for k in ("n", "mean", "median", "p95")}), flush=True)
    base = results["max_damage"]["mean"]
    summary = {k: {"mean_ms": v["mean"], "median_ms": v["median"], "p95_ms": v["p95"], "n": v["n"]}
               for k, v in results.items()}
    ratios = {k: v["mean"] / base for k, v in results.items() if k.startswith("pokechamp") and base > 0}
    out = {"benchmark": "pokechamp_decision_time", "args": vars(args), "summary": summary,
           "ratio_to_max_damage": ratios, "results": results, "seconds": time.perf_counter() - t0,
           "decision_seconds": raw}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({"summary": summary, "ratio_to_max_damage": ratios}, indent=1))


if __name__ == "__main__":
    main()
