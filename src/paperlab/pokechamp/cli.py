"""``paperlab pokechamp``: the PokéChamp experiment, a local Showdown server, and battles between any two players
(cheap to import: the work happens inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    check_model_spec,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("pokechamp", "PokéChamp (2503.04094): minimax language agent for Pokémon battles.")

PLAYERS = ("random", "max_base_power", "max_damage", "heuristic", "pokechamp")

ModelOpt = Annotated[str | None, typer.Option("--model", help="LLM for the PokéChamp player: default | gguf:<file> | "
                                              "hf:<path> | openai:<url>#<model>, or 'none' (LLM off).")]
BudgetOpt = Annotated[float | None, typer.Option("--turn-budget", min=0.0, help="LLM seconds per decision.")]
DepthOpt = Annotated[int | None, typer.Option("--depth", min=2, max=4, help="Search depth K, root = 1 (paper: 2).")]
ConcOpt = Annotated[int | None, typer.Option("--concurrency", min=1, max=32, help="Battles played at once.")]


@app.callback()
def pokechamp() -> None:
    """PokéChamp (arXiv 2503.04094): the paper-time minimax search with LLM candidates and leaf values, a
    Showdown-formula damage calculator, baselines, and a battle runner on a local Pokémon Showdown server."""


def _check_model(model: str | None) -> str | None:
    if model is not None and model != "none":
        check_model_spec(model)
    return model


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: ModelOpt = None,
    battles: Annotated[int | None, typer.Option("--battles", min=1, help="Battles per matchup "
                                                "(default 200; quick 40).")] = None,
    matchups: Annotated[str | None, typer.Option("--matchups", help="Comma-separated player:opponent pairs, "
                                                 "e.g. pokechamp:random,max_damage:random.")] = None,
    turn_budget: BudgetOpt = None,
    depth: DepthOpt = None,
    concurrency: ConcOpt = None,
    chunk: Annotated[int | None, typer.Option("--chunk", min=1, help="Battles per player pair (resume unit).")] = None,
) -> None:
    """Play N random battles per matchup on a local Showdown server (PokéChamp vs. random and max-damage,
    max-damage vs. random); win rates with Wilson CIs, time per decision, the damage-calculator check;
    writes report.md + results.json."""
    overrides: dict = {}
    if _check_model(model) is not None:
        overrides["model"] = model
    if matchups is not None:
        pairs = parse_names(matchups, "--matchups", example="pokechamp:random,max_damage:random")
        for p in pairs or ():
            a, _, b = p.partition(":")
            if a not in PLAYERS or b not in PLAYERS:
                raise UserError(f"--matchups: {p!r} is not player:opponent",
                                f"use players from {', '.join(PLAYERS)}, e.g. pokechamp:max_damage")
        overrides["matchups"] = pairs
    for key, val in (("battles", battles), ("turn_budget_s", turn_budget), ("depth", depth),
                     ("concurrency", concurrency), ("chunk", chunk)):
        if val is not None:
            overrides[key] = val
    from paperlab.pokechamp.experiment import default_config, reproduce
    from paperlab.pokechamp.server import check_node

    default_config(quick, **overrides)   # the settings' own checks, before any work
    check_node()
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def serve(
    port: Annotated[int | None, typer.Option("--port", min=1024, max=65535, help="Port (default: a free one).")] = None,
) -> None:
    """Start the local Showdown server (installing it with npm on first use), print its address, and keep it up
    until Ctrl-C; it is stopped on exit."""
    import time

    from paperlab.pokechamp.server import ShowdownServer, check_node

    check_node()
    with ShowdownServer(port=port) as server:
        typer.echo(json.dumps({"http": server.http_url, "websocket": server.websocket_url}))
        typer.echo("Showdown is running (no security, loopback only); Ctrl-C stops it.", err=True)
        try:
            while server.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


@app.command()
def battle(
    player: Annotated[str, typer.Option("--player", help=f"One of: {', '.join(PLAYERS)}.")] = "pokechamp",
    opponent: Annotated[str, typer.Option("--opponent", help=f"One of: {', '.join(PLAYERS)}.")] = "max_damage",
    n: Annotated[int, typer.Option("--n", min=1, help="Battles to play.")] = 20,
    model: ModelOpt = "default",
    turn_budget: BudgetOpt = 5.0,
    depth: DepthOpt = 2,
    concurrency: ConcOpt = 2,
    output: Annotated[Path | None, typer.Option("--output", help="Also append every battle (with its log) "
                                                "to this JSONL file.")] = None,
) -> None:
    """Play N random battles between two players on a fresh local server; print a JSON summary (win rate with
    Wilson CI, decision times, LLM usage)."""
    for opt, v in (("--player", player), ("--opponent", opponent)):
        if v not in PLAYERS:
            raise UserError(f"unknown {opt} {v!r}", f"use one of: {', '.join(PLAYERS)}")
    _check_model(model)
    if output is not None:
        from paperlab.core.cli import check_writable_file

        check_writable_file(output, "--output")
    from paperlab.pokechamp.battles import decision_stats, play_matchup, win_rate
    from paperlab.pokechamp.minimax import Advisor
    from paperlab.pokechamp.server import ShowdownServer, check_node

    check_node()
    advisor = None
    if "pokechamp" in (player, opponent):
        lm = None
        if model != "none":
            from paperlab.core.models import load_lm

            lm = load_lm(model)
        advisor = Advisor(lm, turn_budget_s=turn_budget)

    def keep(rec: dict) -> None:
        if output is not None:
            with open(output, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    with ShowdownServer() as server:
        recs = play_matchup(server.server_configuration(), player, opponent, n, concurrency=concurrency,
                            chunk=min(n, 10), chunk_timeout_s=600 + min(n, 10) * 60 * (1 + turn_budget),
                            advisor=advisor, depth=depth, on_battle=keep)
    est = win_rate(recs)
    summary = {"player": player, "opponent": opponent, "battles": n,
               "finished": sum(r["finished"] for r in recs), "win_rate": est.as_dict(),
               "decision_s": decision_stats([x for r in recs for x in r["decision_s"]]),
               "opponent_decision_s": decision_stats([x for r in recs for x in r["opponent_decision_s"]]),
               "llm": advisor.snapshot() if advisor is not None else None, "model": model}
    typer.echo(json.dumps(summary, indent=1))
