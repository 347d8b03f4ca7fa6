"""``paperlab telephone run``: the paper's chains at small scale, offline, with its claims tested.

Settings (each a chain over the same passages, metrics at every evaluated generation):

- MT chains with real offline engines: EN->PT->EN (Bergamot), EN->ES->EN (apertium), and the
  multiplayer chain EN -> {PT, ES} shuffled -> EN through both engines;
- the rephrase chain with the default LM: the temperature sweep (Simple prompt, top_p 0.9) and
  the prompt ablation (Simple / Base / Constrained at the paper's Llama temperature 0.6);
- optionally, LM translators given with ``--pool`` (any model spec, e.g. vLLM endpoints): a
  self-loop for each and the two-player chain over the pool, through ``--pivot``.

Claims: ``mt_metrics_decay``, ``multiplayer_decays_faster``, ``temperature_orders_decay``,
``prompt_constraint_helps``, ``factuality_decays``. Each is decided on a percentile-bootstrap interval
over passages, and only with at least :data:`MIN_PASSAGES` passages (fewer: inconclusive).

Reported per setting and evaluated generation: every metric's mean with a percentile-bootstrap 95%
interval (inside the metric's range, unlike a t-interval), FActScore's facts per response, and for LM
chains the share of degenerate generations (a hop cut at ``max_tokens``, or a repetition loop).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.data import data_path
from paperlab.core.errors import UserError
from paperlab.core.models import GenerationParams, load_lm
from paperlab.core.runs import Claim, Run, build_config, claim, markdown_table
from paperlab.core.stats import Estimate, bootstrap_ci, paired_bootstrap_diff
from paperlab.core.translate import load_translator, split_paragraphs, split_sentences
from paperlab.telephone.chains import (
    LMPlayer,
    MTPlayer,
    Player,
    Setup,
    degenerate,
    fixed_point_iteration,
    repetition_loop,
    run_chain,
)
from paperlab.telephone.factscore import LexicalFactJudge, LLMFactJudge
from paperlab.telephone.metrics import METRICS, score_pairs, signatures

PAPER = "LLM as a Broken Telephone: Iterative Generation Distorts Information (arXiv 2502.20258)"
DOMAINS = ("news2024", "booksum", "scriptbase", "wikibio", "pubmed")
#: The paper's evaluation schedule (generations at which metrics are computed).
PAPER_SCHEDULE = (0, 2, 4, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100)
T_ZERO = 0.0  # the paper's T~0 (1e-16) is greedy decoding
#: Fewer passages than this give no verdict: a percentile bootstrap over a handful of units has too
#: few distinct resamples for its interval to mean anything (n = 3 has 10).
MIN_PASSAGES = 10
#: Metrics of a generation reported per evaluated generation (relevance metrics, then factuality).
FACT_METRICS = ("factscore", "fact_recall")
ALL_METRICS = (*METRICS, *FACT_METRICS)


class TelephoneConfig(BaseModel):
    """Configuration of the telephone experiment (saved with every run)."""

    passages: int = Field(30, ge=1, le=750, description="passages for the MT chains")
    lm_passages: int = Field(20, ge=1, le=750, description="passages for the LM rephrase chains")
    lm_passage_words: int | None = Field(None, ge=5, description="LM chains rephrase each passage's leading "
                                         "whole sentences up to this many words (None: the whole passage)")
    mt_iterations: int = Field(12, ge=1)
    lm_iterations: int = Field(8, ge=1)
    domains: list[str] = list(DOMAINS)
    lm: str = "default"
    temperatures: list[float] = [T_ZERO, 0.25, 0.5, 0.75, 1.0]
    prompt_levels: list[str] = ["simple", "base", "constrained"]
    prompt_temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 384
    repetition_penalty: float = Field(1.0, gt=0, description="LM decoding: > 1 penalises repeated tokens "
                                      "(1.0, the default, is off, as in the paper)")
    judge: str = "lexical"
    compat: str = "standard"
    mt: bool = True
    rephrase: bool = True
    pool: list[str] = []
    pivot: str = "pt"
    passage_file: str | None = None
    seed: int = 0

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, v):
        bad = [d for d in v if d not in DOMAINS]
        if bad or not v:
            raise ValueError(f"unknown domains {bad}; use {list(DOMAINS)}")
        return v

    @classmethod
    def quick(cls, **kw) -> TelephoneConfig:
        # More, shorter LM passages than before (12 leads of <= 50 words instead of 3 whole passages) at
        # about the same number of generated tokens: the claims need passages, not length.
        base = dict(passages=10, lm_passages=12, lm_passage_words=50, mt_iterations=6, lm_iterations=4,
                    temperatures=[T_ZERO, 0.5, 1.0], max_tokens=128)
        return cls(**{**base, **kw})


def load_user_passages(path: str, n: int) -> list[tuple[str, int, str]]:
    """The first ``n`` passages of a user's JSONL file (``{"text": ...}`` per line)."""
    from paperlab.core.data import read_jsonl

    rows = read_jsonl(path)
    out = []
    for i, r in enumerate(rows[:n]):
        text = str(r.get("text", "")).strip() if isinstance(r, dict) else ""
        if not text:
            raise UserError(f"{path} record {i + 1} has no non-empty 'text'", 'write {"text": "..."} per line')
        out.append((str(r.get("domain", "user")), i, text))
    return out


def load_passages(n: int, domains: list[str] | tuple[str, ...] = DOMAINS,
                  passage_file: str | None = None) -> list[tuple[str, int, str]]:
    """``n`` passages (domain, row, text), round-robin over domains, from the paper's 150 x 5 set
    (or the first ``n`` of ``passage_file``)."""
    if passage_file:
        return load_user_passages(passage_file, n)
    with open(data_path("telephone", "all_data.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i in range(n):
        d, r = domains[i % len(domains)], i // len(domains)
        if r >= len(rows):
            raise UserError(f"only {len(rows) * len(domains)} passages exist in {domains}", "ask for fewer")
        text = rows[r][d].strip()
        if not text:
            raise UserError(f"passage {d}/{r} is empty", "check the passage file")
        out.append((d, r, text))
    return out


def lead(text: str, words: int | None) -> str:
    """The leading whole sentences of ``text`` up to ``words`` words (at least one sentence)."""
    if words is None:
        return text
    out: list[str] = []
    n = 0
    for s in (s for p in split_paragraphs(text) for s in split_sentences(p)):
        k = len(s.split())
        if out and n + k > words:
            break
        out.append(s)
        n += k
    return " ".join(out)


def eval_points(iterations: int) -> list[int]:
    """Every generation up to 20 iterations; beyond, the paper's schedule plus 1 and the last."""
    if iterations <= 20:
        return list(range(iterations + 1))
    pts = {t for t in PAPER_SCHEDULE if t <= iterations} | {1, iterations}
    return sorted(pts)


@dataclass
class Setting:
    name: str
    group: str  # "mt" | "temperature" | "prompt" | "pool"
    setup: Setup
    pool: list[Player]
    iterations: int
    passages: list[tuple[str, int, str]]
    temperature: float | None = None   # LM chains: the sampling temperature
    level: str | None = None           # LM chains: the prompt constraint level


def build_settings(cfg: TelephoneConfig) -> list[Setting]:
    settings: list[Setting] = []
    if cfg.mt:
        mt_passages = load_passages(cfg.passages, cfg.domains, cfg.passage_file)
        bergamot = MTPlayer(load_translator("mt:bergamot"), "bergamot")
        apertium = MTPlayer(load_translator("mt:apertium"), "apertium")
        settings += [
            Setting("EN-PT-EN bergamot", "mt", Setup("en-pt-en", "self_loop", ("pt",)), [bergamot],
                    cfg.mt_iterations, mt_passages),
            Setting("EN-ES-EN apertium", "mt", Setup("en-es-en", "self_loop", ("es",)), [apertium],
                    cfg.mt_iterations, mt_passages),
            Setting("multiplayer PT+ES", "mt", Setup("multiplayer", "multiplayer", ("pt", "es")),
                    [bergamot, apertium], cfg.mt_iterations, mt_passages),
        ]
    if cfg.rephrase or cfg.pool:
        lm_passages = [(d, r, lead(t, cfg.lm_passage_words))
                       for d, r, t in load_passages(cfg.lm_passages, cfg.domains, cfg.passage_file)]
    if cfg.rephrase:
        lm = load_lm(cfg.lm)
        rephrase = Setup("rephrase", "rephrase")
        for t in cfg.temperatures:
            params = GenerationParams(temperature=t, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
                                      repetition_penalty=cfg.repetition_penalty)
            settings.append(Setting(f"rephrase T={t:g} simple", "temperature", rephrase,
                                    [LMPlayer(lm, params, "simple")], cfg.lm_iterations, lm_passages,
                                    temperature=t, level="simple"))
        for level in cfg.prompt_levels:
            params = GenerationParams(temperature=cfg.prompt_temperature, top_p=cfg.top_p,
                                      max_tokens=cfg.max_tokens, seed=cfg.seed,
                                      repetition_penalty=cfg.repetition_penalty)
            settings.append(Setting(f"rephrase {level} T={cfg.prompt_temperature:g}", "prompt", rephrase,
                                    [LMPlayer(lm, params, level)], cfg.lm_iterations, lm_passages,
                                    temperature=cfg.prompt_temperature, level=level))
    if cfg.pool:
        params = GenerationParams(temperature=cfg.prompt_temperature, top_p=cfg.top_p,
                                  max_tokens=cfg.max_tokens, seed=cfg.seed,
                                      repetition_penalty=cfg.repetition_penalty)
        players = [LMPlayer(load_lm(s), params, "base", name=s) for s in cfg.pool]
        loop = Setup(f"en-{cfg.pivot}-en", "self_loop", (cfg.pivot,))
        for p in players:
            settings.append(Setting(f"self-loop {p.name}", "pool", loop, [p], cfg.lm_iterations, lm_passages,
                                    temperature=cfg.prompt_temperature, level="base"))
        if len(players) > 1:
            settings.append(Setting("two-player pool", "pool", Setup("two-player", "two_player", (cfg.pivot,)),
                                    players, cfg.lm_iterations, lm_passages,
                                    temperature=cfg.prompt_temperature, level="base"))
    return settings


def evaluate(originals: list[str], texts: list[list[str]], points: list[int], cfg: TelephoneConfig,
             judge) -> tuple[dict[str, dict[int, list[float]]], dict[int, list[int]]]:
    """Per-passage metric values at each evaluated generation, ``values[metric][t][passage]``, and
    FActScore's facts per response, ``facts[t][passage]``."""
    values: dict[str, dict[int, list[float]]] = {m: {} for m in ALL_METRICS}
    facts: dict[int, list[int]] = {}
    for t in points:
        gens = [tx[t] for tx in texts]
        scores = score_pairs(originals, gens, compat=cfg.compat)
        for m in METRICS:
            values[m][t] = scores[m]
        fr = judge.score_pairs(originals, gens)
        values["factscore"][t] = [r.score for r in fr]
        values["fact_recall"][t] = [r.recall for r in fr]
        facts[t] = [r.n_facts for r in fr]
    return values, facts


def metric_ci(values) -> Estimate:
    """Mean over passages with a percentile-bootstrap 95% interval (stays inside the metric's range)."""
    return bootstrap_ci(values, n_boot=1000)


def degeneracy(texts: list[list[str]], hops: list[list[list]]) -> dict[str, list[float]]:
    """Per iteration t = 1..T, the share of passages whose generation t ran to ``max_tokens`` in some hop
    (``length``), loops (``loop``), or either (``degenerate``); MT chains have no finish reasons."""
    iters = range(len(texts[0]) - 1) if texts else range(0)
    n = max(len(texts), 1)
    return {
        "length": [sum(any(h.finish_reason == "length" for h in hp[t]) for hp in hops) / n for t in iters],
        "loop": [sum(repetition_loop(tx[t + 1]) for tx in texts) / n for t in iters],
        "degenerate": [sum(degenerate(tx[t + 1], hp[t]) for tx, hp in zip(texts, hops, strict=True)) / n
                       for t in iters],
        "original_loops": [sum(repetition_loop(tx[0]) for tx in texts) / n],
    }


def summarise(s: Setting, texts: list[list[str]], hops, cfg: TelephoneConfig, judge) -> dict:
    """One setting's measurements: per-passage values, means and bootstrap intervals, degeneracy."""
    points = eval_points(s.iterations)
    values, facts = evaluate([p[2] for p in s.passages], texts, points, cfg, judge)
    cis = {m: [metric_ci(values[m][t]) for t in points] for m in values}
    return {
        "group": s.group, "kind": s.setup.kind, "temperature": s.temperature, "level": s.level,
        "iterations": s.iterations, "points": points, "n_passages": len(s.passages),
        "passages": [f"{d}/{r}" for d, r, _ in s.passages],
        "mean": {m: [e.value for e in cis[m]] for m in values},
        "ci": {m: [[e.lo, e.hi] for e in cis[m]] for m in values},
        "ci_method": "percentile bootstrap over passages (1000 resamples), 95%",
        "per_passage": {m: {str(t): values[m][t] for t in points} for m in values},
        "facts_per_response": {"mean": [float(np.mean(facts[t])) for t in points],
                               "per_passage": {str(t): facts[t] for t in points}},
        "first_repeat": [fixed_point_iteration(tx) for tx in texts],
        "words": [float(np.mean([len(tx[t].split()) for tx in texts])) for t in points],
        "degeneracy": degeneracy(texts, hops) if s.group != "mt" else None,
    }


def run_experiment(cfg: TelephoneConfig, out: Path | None = None) -> Path:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = build_settings(cfg)          # inputs and models first: a bad one leaves no run folder
    if not settings:
        raise UserError("nothing to run", "enable --mt or --rephrase, or give --pool")
    judge = LexicalFactJudge() if cfg.judge == "lexical" else LLMFactJudge(load_lm(cfg.judge))
    score_pairs(["A check."], ["A check."], compat=cfg.compat, bertscore=False)  # a missing metric package fails here
    run = Run("telephone", out, cfg)
    summary: dict[str, dict] = {}
    (run.dir / "generations.jsonl").unlink(missing_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as prog:
        task = prog.add_task("chains", total=sum(s.iterations for s in settings) + len(settings))
        for s in settings:
            prog.update(task, description=f"{s.name}")
            originals = [p[2] for p in s.passages]
            texts, hops = run_chain(originals, s.setup, s.pool, s.iterations, cfg.seed,
                                    on_iteration=lambda *_: prog.advance(task))
            for (d, r, _), tx, hp in zip(s.passages, texts, hops, strict=True):
                run.append("generations", {"setting": s.name, "domain": d, "row": r,
                                           "texts": {f"{t}_en": x for t, x in enumerate(tx)},
                                           "players": [[h.player for h in it] for it in hp],
                                           "routes": [[f"{h.src}->{h.tgt}" for h in it] for it in hp],
                                           "finish_reasons": [[h.finish_reason for h in it] for it in hp]})
            prog.update(task, description=f"{s.name}: metrics")
            summary[s.name] = summarise(s, texts, hops, cfg, judge)
            prog.advance(task)
    claims = make_claims(summary, cfg)
    sections = report_sections(summary, cfg, judge.name)
    plot(run, summary)
    run.finish(claims, results={"settings": summary, "signatures": signatures(cfg.compat), "judge": judge.name,
                                "min_passages": MIN_PASSAGES},
               sections=sections, scale_note=SCALE_NOTE, title="Broken Telephone: iterative generation distorts information",
               paper=PAPER)
    return run.dir


SCALE_NOTE = """
- **Translators**: the paper chains 8-9B instruction-tuned LLMs (Llama-3.1-8B, Mistral, Gemma-2) through
  French and Thai. Offline here, the MT chains use real MT engines (Bergamot EN<->PT, neural, int8;
  apertium EN<->ES, rule-based), which decode deterministically: a deterministic chain reaches a fixed
  point once a text maps to itself, exactly the paper's T~0 prediction. The report shows where.
- **Multiplayer**: the paper's bridges are several languages translated directly between each other by
  several models; offline only EN<->PT and EN<->ES engines exist, so each iteration runs EN -> PT/ES
  (shuffled) with the hop between the two bridges pivoting through English (4 hops per iteration
  instead of 2).
- **Rephrase chains** use SmolLM2-135M-Instruct (a 135M model), not an 8B model: it follows the
  rephrase instruction loosely, so its drift is much faster than the paper's and prompt wording matters
  less than it does for a capable model.
  It also falls into repetition loops that run to `max_tokens`; the report gives the share of such
  degenerate generations per iteration (they stay in the chain; a repetition penalty is an option,
  `--repetition-penalty`, off by default as in the paper).
- **Scale**: tens of passages and up to a few dozen iterations instead of 150 passages x 100 iterations.
  With `--quick`, the LM chains rephrase the leading sentences (<= 50 words) of 12 passages instead of
  whole passages, so that the claims rest on enough passages within the time budget.
- **FActScore**: as in the paper, the generation's facts are checked against the original (a precision,
  `factscore`, with the facts per response reported); the reverse direction is reported as `fact_recall`.
  Unless a judge model is given (`--judge <spec>`), facts and verification use the documented offline
  fallback (clause facts + MiniLM similarity + number check), not an LLM judge, so facts per response are
  clauses (a handful) rather than the paper's ~50 atomic facts; BERTScore uses the offline all-MiniLM-L6-v2
  encoder instead of roberta-large. Absolute values are therefore not comparable with the paper's; trends are.
"""


def _final(summary: dict, name: str, metric: str) -> float:
    return summary[name]["mean"][metric][-1]


def _at(summary: dict, name: str, metric: str, t: int) -> float:
    return summary[name]["mean"][metric][summary[name]["points"].index(t)]


def _per_passage(summary: dict, name: str, metric: str, t: int | None = None) -> dict[str, float]:
    """``{passage id: metric value}`` of one setting at generation ``t`` (default: the last evaluated)."""
    s = summary[name]
    t = s["points"][-1] if t is None else t
    vals = s["per_passage"][metric][str(t)]
    ids = s.get("passages") or [str(i) for i in range(len(vals))]
    return dict(zip(ids, vals, strict=True))


def _paired(a: dict[str, float], b: dict[str, float]):
    """Paired bootstrap of ``mean(a) - mean(b)`` over the passages both were measured on."""
    keys = [k for k in a if k in b]
    return paired_bootstrap_diff([a[k] for k in keys], [b[k] for k in keys])


def _decidable(est: Estimate) -> Estimate:
    """``est``, or the same value with no interval when it rests on fewer than MIN_PASSAGES passages."""
    if est.n >= MIN_PASSAGES:
        return est
    return Estimate(est.value, float("nan"), float("nan"), est.n,
                    f"{est.method}; n = {est.n} < {MIN_PASSAGES} passages: no verdict", est.confidence)


def _diff(a: dict[str, float], b: dict[str, float]) -> Estimate:
    return _decidable(_paired(a, b))


def temperature_order(summary: dict, names: list[str], metric: str = "chrf") -> Estimate:
    """Mean over passages of each passage's Spearman rho between temperature and its final ``metric``,
    over every temperature; percentile bootstrap over passages (a passage's temperatures stay together,
    so passage difficulty cancels). A passage whose finals are all equal counts as rho = 0."""
    from scipy.stats import rankdata

    temps = rankdata([float(summary[n]["temperature"]) for n in names])
    finals = [_per_passage(summary, n, metric) for n in names]
    ids = [k for k in finals[0] if all(k in f for f in finals)]
    rhos = []
    for k in ids:
        r = rankdata([f[k] for f in finals])
        rhos.append(0.0 if np.ptp(r) == 0 else float(np.corrcoef(temps, r)[0, 1]))
    est = bootstrap_ci(rhos, n_boot=2000)
    return _decidable(Estimate(est.value, est.lo, est.hi, est.n,
                               f"mean per-passage Spearman rho (temperature vs final {metric}) over "
                               f"{len(names)} temperatures, {est.method}", est.confidence))


def make_claims(summary: dict, cfg: TelephoneConfig) -> list[Claim]:
    """The paper's claims, each decided on a 95% bootstrap interval over passages (the run's unit of variation).

    ``summary`` maps setting name -> ``{"group", "temperature", "level", "points", "mean", "per_passage",
    "passages"}`` as built by :func:`summarise`. Every setting is one chain run (one seed), so an interval
    covers the variation between passages, not between decoding seeds. With fewer than
    :data:`MIN_PASSAGES` passages a claim is inconclusive (too few units for a meaningful interval).
    """
    note = (f"one chain run per setting (seed {cfg.seed}); the interval is over passages, so it covers "
            f"variation between passages, not between decoding seeds; fewer than {MIN_PASSAGES} passages "
            "give no verdict")
    claims = []
    mt = [n for n, s in summary.items() if s["group"] == "mt"]
    multi = [n for n in mt if summary[n]["kind"] == "multiplayer"]
    bilingual = [n for n in mt if summary[n]["kind"] != "multiplayer"]
    if mt:
        vals = {n: {"chrf_1": _at(summary, n, "chrf", 1), "chrf_last": _final(summary, n, "chrf"),
                    "bleu_1": _at(summary, n, "bleu", 1), "bleu_last": _final(summary, n, "bleu")} for n in mt}
        decay = {f"{n}: {m} 1 - last": _diff(_per_passage(summary, n, m, 1), _per_passage(summary, n, m))
                 for n in mt for m in ("chrf", "bleu")}
        claims.append(claim(
            "mt_metrics_decay", "For each MT chain, chrF and BLEU at the last iteration are below iteration 1 "
            "(paired over passages: iteration 1 minus last > 0)", decay, expect="greater", note=note, **vals))
        if multi and bilingual:
            finals = {n: _final(summary, n, "chrf") for n in bilingual}
            slower = max(finals, key=finals.get)
            m_final = _final(summary, multi[0], "chrf")
            claims.append(claim(
                "multiplayer_decays_faster",
                "The multiplayer chain's final chrF is below the slower-decaying bilingual chain's "
                "(paired over passages: bilingual minus multiplayer > 0)",
                _diff(_per_passage(summary, slower, "chrf"), _per_passage(summary, multi[0], "chrf")),
                expect="greater", compared_with=slower, multiplayer_final_chrf=m_final,
                bilingual_final_chrf=finals, note=note))
        fs = {n: {"factscore_1": _at(summary, n, "factscore", 1), "factscore_last": _final(summary, n, "factscore"),
                  "fact_recall_1": _at(summary, n, "fact_recall", 1),
                  "fact_recall_last": _final(summary, n, "fact_recall")} for n in mt}
        fs_decay = {f"{n}: factscore 1 - last": _diff(_per_passage(summary, n, "factscore", 1),
                                                     _per_passage(summary, n, "factscore")) for n in mt}
        claims.append(claim(
            "factuality_decays", "For each MT chain, FActScore (the generation's facts supported by the original) "
            "at the last iteration is below iteration 1 (paired over passages: iteration 1 minus last > 0)",
            fs_decay, expect="greater", judge=cfg.judge, note=note, **fs))
    temps = sorted((n for n, s in summary.items() if s["group"] == "temperature"),
                   key=lambda n: summary[n]["temperature"])
    if len(temps) >= 2:
        by_t = {f"{summary[n]['temperature']:g}": _final(summary, n, "chrf") for n in temps}
        steps = {f"T={summary[a]['temperature']:g} - T={summary[b]['temperature']:g}":
                 _paired(_per_passage(summary, a, "chrf"), _per_passage(summary, b, "chrf")).as_dict()
                 for a, b in zip(temps[:-1], temps[1:], strict=True)}
        claims.append(claim(
            "temperature_orders_decay", "Rephrase chain: final chrF falls as temperature rises, over all "
            "temperatures (mean over passages of the per-passage Spearman rho of temperature vs final chrF < 0)",
            temperature_order(summary, temps), expect="less", final_chrf_by_temperature=by_t,
            adjacent_differences=steps, note=note))
    prompts = {summary[n]["level"]: n for n, s in summary.items() if s["group"] == "prompt"}
    if {"simple", "base", "constrained"} <= set(prompts):
        simple = _per_passage(summary, prompts["simple"], "chrf")
        claims.append(claim(
            "prompt_constraint_helps", "Rephrase chain: final chrF with Constrained and Base prompts is above Simple "
            "(paired over passages)",
            {f"{lv} - simple": _diff(_per_passage(summary, prompts[lv], "chrf"), simple)
             for lv in ("constrained", "base")}, expect="greater",
            final_chrf_by_prompt={lv: _final(summary, n, "chrf") for lv, n in prompts.items()}, note=note))
    return claims


def _fmt_ci(s: dict, m: str, i: int) -> str:
    lo, hi = s["ci"][m][i]
    v = s["mean"][m][i]
    if v is None:
        return "-"
    return f"{v:.3f}" if lo is None else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def report_sections(summary: dict, cfg: TelephoneConfig, judge: str) -> list[str]:
    rows = []
    for n, s in summary.items():
        first = 1 if 1 in s["points"] else s["points"][0]
        i1 = s["points"].index(first)
        rows.append([n, s["n_passages"], s["iterations"]] + [
            f"{s['mean'][m][i1]:.3f} -> {s['mean'][m][-1]:.3f}" for m in ALL_METRICS])
    out = ["## Metrics, generation 1 -> last (means over passages)\n\n"
           + markdown_table(["setting", "passages", "iterations", *ALL_METRICS], rows),
           f"Convention: `{cfg.compat}`; FActScore judge: `{judge}`. `factscore` is the paper's direction (the "
           "generation's facts supported by the original); `fact_recall` the reverse (the original's facts found "
           "in the generation). Per-iteration means with percentile-bootstrap 95% intervals are in `results.json` "
           "(`settings.<name>.mean`/`ci`), per-passage values under `per_passage`, raw texts and finish reasons in "
           "`generations.jsonl`."]
    last = [[n, _fmt_ci(s, "chrf", -1), _fmt_ci(s, "factscore", -1), _fmt_ci(s, "fact_recall", -1),
             " / ".join(f"{x:.1f}" for x in s["facts_per_response"]["mean"])] for n, s in summary.items()]
    out += ["## Last generation with 95% intervals, and FActScore's facts per response\n\n"
            "Intervals: percentile bootstrap over passages (inside [0, 1]). Facts per response: mean number of "
            "atomic facts extracted from the generation at each evaluated generation (0, 1, ...); it varies with "
            "the generation, as in the paper.\n\n"
            + markdown_table(["setting", "chrF", "factscore", "fact_recall", "facts per response by generation"],
                             last)]
    deg = []
    for n, s in summary.items():
        d = s.get("degeneracy")
        if not d:
            continue
        share = " / ".join(f"{x:.2f}" for x in d["degenerate"])
        deg.append([n, share, " / ".join(f"{x:.2f}" for x in d["length"]),
                    " / ".join(f"{x:.2f}" for x in d["loop"])])
    if deg:
        out += ["## Degenerate LM generations per iteration\n\n"
                f"Share of passages whose generation at iteration 1, 2, ... is degenerate: a hop ran to "
                f"`max_tokens` = {cfg.max_tokens} (finish reason `length`) or the text is a repetition loop (more "
                "than 25% repeated word 4-grams, or one unit repeated 5+ times at the end). Degenerate texts stay "
                "in the chain and in every metric. "
                + ("No repetition penalty was applied (the paper's setting; `--repetition-penalty 1.1` turns one on)."
                   if cfg.repetition_penalty == 1.0 else
                   f"A repetition penalty of {cfg.repetition_penalty:g} was applied (`--repetition-penalty`; the "
                   "paper applies none).") + "\n\n"
                + markdown_table(["setting", "degenerate", "finish = length", "repetition loop"], deg)]
    fp = []
    for n, s in summary.items():
        if s["group"] != "mt":
            continue
        reps = [r for r in s["first_repeat"] if r is not None]
        fp.append([n, f"{len(reps)}/{len(s['first_repeat'])}",
                   f"{np.median(reps) - 1:.0f}" if reps else "-"])
    if fp:
        out += ["## Fixed points of the deterministic MT chains\n\n"
                "A chain is at a fixed point once an iteration returns exactly the previous text (the paper's "
                "T~0 result in its purest form: deterministic decoding stops drifting).\n\n"
                + markdown_table(["setting", "passages that reached a fixed point", "median generation of the fixed point"], fp)]
    return out


def plot(run: Run, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ALL_METRICS
    cols = 4
    rows = -(-len(metrics) // cols)
    for group, title in (("mt", "MT chains"), ("temperature", "Rephrase chain: temperature"),
                         ("prompt", "Rephrase chain: prompt constraint"), ("pool", "LM translator pool")):
        names = [n for n, s in summary.items() if s["group"] == group]
        if not names:
            continue
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax in axes.flat[len(metrics):]:
            ax.axis("off")
        for ax, m in zip(axes.flat, metrics, strict=False):
            for n in names:
                s = summary[n]
                mean = np.array([np.nan if v is None else v for v in s["mean"][m]], dtype=float)
                ci = np.array([[np.nan, np.nan] if c[0] is None else c for c in s["ci"][m]], dtype=float)
                ax.plot(s["points"], mean, marker="o", ms=3, label=n)
                ax.fill_between(s["points"], ci[:, 0], ci[:, 1], alpha=0.15)
            ax.set_title(m)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(title, y=1.01)
        run.savefig(fig, f"metrics_{group}",
                    f"{title}: every metric vs. iteration (mean over passages, percentile-bootstrap 95% CI)")
    lm = [n for n, s in summary.items() if s.get("degeneracy")]
    if lm:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for n in lm:
            d = summary[n]["degeneracy"]["degenerate"]
            ax.plot(range(1, len(d) + 1), d, marker="o", label=n)
        ax.set_xlabel("iteration")
        ax.set_ylabel("share of degenerate generations")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        run.savefig(fig, "degenerate", "LM chains: share of generations cut at max_tokens or looping, per iteration")
    mt = [n for n, s in summary.items() if s["group"] == "mt"]
    if mt:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for n in mt:
            s = summary[n]
            reps = s["first_repeat"]
            xs = list(range(s["iterations"] + 1))
            ax.plot(xs, [np.mean([r is not None and r - 1 <= t for r in reps]) for t in xs], marker="o", label=n)
        ax.set_xlabel("iteration")
        ax.set_ylabel("fraction of passages at a fixed point")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        run.savefig(fig, "fixed_points", "Deterministic MT chains: fraction of passages whose text stopped changing")


def default_config(quick: bool = False, **overrides) -> TelephoneConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return build_config(TelephoneConfig, "telephone", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)
