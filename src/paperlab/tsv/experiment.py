"""``paperlab tsv run``: TSV on TruthfulQA with the paper's split, baselines, claims and a report.

Two ways to get the answers to detect (``--mode``; both split by question with the paper's indices,
so no question is in two splits):

- ``gold`` (default of ``--quick``): TruthfulQA's own reference answers, labelled by the dataset --
  each question gives ``answers_per_question`` answers (default 2: its best answer and an incorrect
  one). Offline, exact labels, and both classes for every question, so a detector must tell a
  question's true answer from its false one rather than easy questions from hard ones.
- ``paper`` (default of the full run): the LM's own greedy answers, labelled against the references
  (:mod:`paperlab.tsv.labelling`) -- the paper's protocol with a substitute for BLEURT.
  ``--answers-file`` gives answers (and optionally labels) from elsewhere instead of generating.

Every answer is embedded in the context it was generated in: the chat template with the paper's
prompt as the user turn (:func:`paperlab.tsv.labelling.scoring_context`).

Pipeline (each step a function below):

1. :func:`collect_items` -- answers and labels per split;
2. :func:`frozen_forward` -- one unsteered forward per answer: cache of :math:`h_l`, raw embedding,
   :math:`\\log p(a \\mid q)`; and :math:`\\log p(a)` without the question;
3. :func:`baseline_scores` -- perplexity, PMI, question-answer cosine, raw prototypes, probe;
4. :func:`train_tsv` -- stage 1 over a grid of lambda (relative to the residual norm) x learning rate x
   seeds, epochs selected on the validation split; the setting with the best mean validation AUROC
   over seeds goes on to stage 2 (OT pseudo-labels), per seed;
5. :func:`make_claims` -- paired bootstrap of the seed-mean AUROC differences on the test split;
6. report and plots; the seed-0 detector is saved to ``<run>/detector`` and re-scored by full forwards.

Claims: ``tsv_beats_baselines``, ``tsv_ot_stage``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.errors import UserError
from paperlab.core.runs import Claim, Run, build_config, claim, markdown_table
from paperlab.core.stats import Estimate, auroc, auroc_ci, auroc_diff, mean_auroc_diff  # noqa: F401

PAPER = "How to Steer LLM Latents for Hallucination Detection? (Park et al., ICML 2025, arXiv 2503.01917)"
BASELINES = ("perplexity", "pmi", "qa_cosine", "raw_prototypes", "probe")
#: Label-free scores whose direction is picked on the validation split.
LABEL_FREE = ("perplexity", "pmi", "qa_cosine")
LABELS = {
    "perplexity": "Perplexity (mean answer log-prob)",
    "pmi": "PMI log p(a|q) - log p(a), same LM",
    "qa_cosine": "Question-answer cosine (MiniLM)",
    "raw_prototypes": "Raw-embedding prototypes (same exemplars)",
    "probe": "Logistic probe (same exemplars)",
    "supervised_probe": "Logistic probe, all wild labels (reference)",
    "tsv_stage1": "TSV stage 1 only",
    "tsv": "TSV stage 1 + OT (full method)",
}
SHORT = {"perplexity": "perplexity", "pmi": "PMI", "qa_cosine": "Q-A cosine", "raw_prototypes": "raw protos",
         "probe": "probe", "supervised_probe": "probe, all\nlabels (ref.)", "tsv_stage1": "TSV stage 1",
         "tsv": "TSV + OT"}
NAMES = {"perplexity": "perplexity baseline", "pmi": "PMI of answer and question",
         "qa_cosine": "question-answer cosine", "raw_prototypes": "raw-embedding prototypes",
         "probe": "logistic probe"}
METHODS = (*BASELINES, "supervised_probe", "tsv_stage1", "tsv")
PAPER_LAMBDA = 5.0
MODES = ("gold", "paper")


class TSVConfig(BaseModel):
    """Configuration of a TSV run (saved with it). Algorithm defaults are the paper's."""

    model: str = "default"
    mode: str = Field("paper", description="gold: TruthfulQA's reference answers; paper: generated + labelled")
    answers_per_question: int = Field(2, ge=2, description="gold mode: reference answers per question")
    labeller: str = "rouge"
    max_new_tokens: int = Field(64, ge=1)
    max_length: int = Field(256, ge=16)
    n_wild: int | None = Field(None, ge=1, description="wild (unlabelled) questions; None = all 512")
    n_test: int | None = Field(None, ge=4, description="test questions; None = all 205")
    n_val: int | None = Field(None, ge=2, description="validation questions; None = all 68")
    n_exemplars: int = Field(32, ge=2, description="labelled exemplar answers (paper: 32)")
    answers_file: str | None = Field(None, description="JSONL {row, answer[, label]}: these answers, no generation")
    layer: int | None = Field(None, ge=0, description="steering layer; None = round(9/32 * depth)")
    lam: float | None = Field(None, description="one absolute lambda (no lambda grid); None = the grid")
    lam_rel: list[float] = Field([0.1, 0.3], description="lambda / residual norm, tried besides the paper's 5")
    tau: float = Field(0.1, gt=0)
    ema_decay: float = Field(0.99, ge=0, lt=1)
    lr: float | None = Field(None, gt=0, description="one learning rate (no lr grid); None = lr_grid")
    lr_grid: list[float] = Field([5e-3, 2e-2, 5e-2], description="learning rates tried (paper: 5e-3)")
    seeds: int = Field(3, ge=1, description="training seeds seed, seed+1, ...")
    batch_size: int = Field(128, ge=1)
    stage1_epochs: int = Field(20, ge=1)
    stage2_epochs: int = Field(20, ge=0)
    k: int = Field(128, ge=2)
    sinkhorn_eps: float = Field(0.05, gt=0)
    sinkhorn_iters: int = Field(3, ge=1)
    micro_batch: int = Field(16, ge=1)
    val_every: int = Field(1, ge=1, description="validate every this many epochs (and at each stage's end)")
    bootstrap: int = Field(1000, ge=10)
    threads: int = Field(2, ge=1)
    seed: int = 0

    @field_validator("labeller")
    @classmethod
    def _labeller(cls, v):
        from paperlab.tsv.labelling import LABELLERS

        if v not in LABELLERS:
            raise ValueError(f"unknown labeller {v!r}; use one of {list(LABELLERS)}")
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v):
        if v not in MODES:
            raise ValueError(f"unknown mode {v!r}; use one of {list(MODES)}")
        return v

    @field_validator("lam_rel", "lr_grid")
    @classmethod
    def _positive_list(cls, v):
        if not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError("every value must be a positive finite number")
        return v

    @classmethod
    def quick(cls, **kw) -> TSVConfig:
        base = dict(mode="gold", n_wild=32, n_val=24, n_test=80, stage1_epochs=4, stage2_epochs=2, k=24,
                    val_every=2, lam_rel=[0.3], lr_grid=[5e-3, 5e-2])
        return cls(**{**base, **kw})

    def lambdas(self, norm: float) -> list[float]:
        """Absolute lambdas of the grid: the paper's 5, then ``lam_rel`` times the residual norm."""
        if self.lam is not None:
            return [self.lam]
        return list(dict.fromkeys([PAPER_LAMBDA, *(r * norm for r in self.lam_rel)]))

    def lrs(self) -> list[float]:
        return [self.lr] if self.lr is not None else list(dict.fromkeys(self.lr_grid))

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


# ------------------------------------------------------------------------------------------
# Statistics and claims
# ------------------------------------------------------------------------------------------


def _as_runs(x) -> list[np.ndarray]:
    """One score vector, or a list of them (one per training seed)."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [x]
    return [np.asarray(r, dtype=float) for r in x]


def make_claims(y_test, scores: dict, cfg: TSVConfig, groups=None) -> list[Claim]:
    """The paper's claims, decided on paired AUROC differences over the test answers (resampled by
    question when ``groups`` gives each answer's question).

    ``scores[m]`` is method ``m``'s truthfulness score per test answer (label ``y_test[i]``); for
    ``tsv`` and ``tsv_stage1`` it may be a list with one vector per training seed, and the claim is
    about their mean AUROC (:func:`mean_auroc_diff`). Every baseline in :data:`BASELINES` must be
    beaten for ``tsv_beats_baselines`` to hold.
    """
    n_seeds = len(_as_runs(scores["tsv"]))
    unit = "test questions (all answers of a question resampled together)" if groups is not None else "test answers"
    note = (f"{n_seeds} training seed(s), AUROC averaged over them; the interval is over {unit} "
            "(the seeds' spread is reported apart)")
    d = {m: mean_auroc_diff(y_test, scores["tsv"], scores[m], groups=groups, n_boot=cfg.bootstrap, seed=cfg.seed)
         for m in (*BASELINES, "tsv_stage1")}
    mean_auc = {m: float(np.mean([auroc(y_test, s) for s in _as_runs(scores[m])]))
                for m in ("tsv", "tsv_stage1", *BASELINES)}
    return [
        claim("tsv_beats_baselines",
              "Test AUROC of TSV (stage 1 + OT) is above every baseline: perplexity, PMI, question-answer "
              "cosine, raw prototypes and the probe (paired AUROC difference over test answers, each > 0)",
              {f"tsv - {b}": d[b] for b in BASELINES}, expect="greater",
              tsv=mean_auc["tsv"], **{b: mean_auc[b] for b in BASELINES}, note=note),
        claim("tsv_ot_stage", "Stage 2 (Sinkhorn pseudo-labels + retraining) raises test AUROC over stage 1 alone "
              "(paired AUROC difference over test answers > 0)",
              d["tsv_stage1"], expect="greater", stage1=mean_auc["tsv_stage1"],
              stage1_plus_ot=mean_auc["tsv"], note=note),
    ]


def plain_verdicts(claims: Sequence[Claim]) -> list[str]:
    """One sentence per baseline saying whether TSV beats it, read off the claim's evidence."""
    c = next(c for c in claims if c.id == "tsv_beats_baselines")
    out = []
    for b in BASELINES:
        e = c.values["evidence"][f"tsv - {b}"]
        what = {"holds": "TSV **beats**", "contradicted": "TSV is **worse than**",
                "inconclusive": "TSV does **not** beat"}[e["verdict"]]
        tail = "" if e["verdict"] != "inconclusive" else " (the interval includes no difference)"
        out.append(f"- {what} the {NAMES[b]}: AUROC difference {e['value']:+.3f} "
                   f"[{e['lo']:+.3f}, {e['hi']:+.3f}]{tail}.")
    if c.verdict != "holds":
        out.append("\nA detector that does not beat these simple scores is not yet useful at this scale.")
    return out


# ------------------------------------------------------------------------------------------
# Step 1: answers and labels
# ------------------------------------------------------------------------------------------


@dataclass
class Items:
    """The answers to score, their labels and splits (positions index every per-answer array)."""

    items: list  # list[paperlab.tsv.data.Item]
    questions: list[str]  # question text per item
    labelling: dict = field(default_factory=dict)

    def pos(self, split: str) -> list[int]:
        return [j for j, it in enumerate(self.items) if it.split == split]

    @property
    def y(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=int)


def split_parts(cfg: TSVConfig, n_questions: int) -> dict[str, list[int]]:
    """Question rows per split (the paper's split; in gold mode enough exemplar questions for
    ``n_exemplars`` labelled answers)."""
    from paperlab.tsv.data import paper_split

    sp = paper_split(n_questions)
    n_ex_q = math.ceil(cfg.n_exemplars / cfg.answers_per_question) if cfg.mode == "gold" else cfg.n_exemplars
    return {"exemplar": sp.exemplars[:n_ex_q], "val": sp.val[: cfg.n_val], "test": sp.test[: cfg.n_test],
            "wild": sp.wild[: cfg.n_wild]}


def read_answers_file(path: str | Path, parts: dict[str, list[int]] | None = None) -> list[dict]:
    """Records ``{"row": <TruthfulQA row>, "answer": "...", "label": 0|1 (optional)}``; a row may have several.

    One-line :class:`UserError` for a bad record, a row outside TruthfulQA, a label that is present on
    some records but not all, or (with ``parts``) a question of the split with no answer.
    """
    from paperlab.core.data import read_jsonl

    recs = read_jsonl(path)
    for i, r in enumerate(recs, 1):
        if isinstance(r.get("row"), bool) or not isinstance(r.get("row"), int) or not isinstance(r.get("answer"), str):
            raise UserError(f"{path} record {i} lacks an integer 'row' and a string 'answer'",
                            'write {"row": 0, "answer": "..."} per line')
        if not 0 <= r["row"] < 817:
            raise UserError(f"{path} record {i} has row {r['row']}, outside TruthfulQA's 0..816", "use TruthfulQA rows")
        if "label" in r and r["label"] not in (0, 1) or isinstance(r.get("label"), bool):
            raise UserError(f"{path} record {i} has label {r['label']!r}", "labels are 1 (truthful) or 0")
    n_lab = sum("label" in r for r in recs)
    if 0 < n_lab < len(recs):
        raise UserError(f"{path}: {n_lab} of {len(recs)} records have a 'label'",
                        "label every record, or none (then --labeller labels them)")
    if parts is not None:
        have = {r["row"] for r in recs}
        missing = [r for rows in parts.values() for r in rows if r not in have]
        if missing:
            raise UserError(f"{path} has no answer for {len(missing)} needed rows (e.g. {missing[:5]})",
                            "answer every question of the split or drop --answers-file")
    return recs


def collect_items(cfg: TSVConfig, questions, parts: dict[str, list[int]], progress=None) -> Items:
    """Answers (gold references, a given file, or the LM's) with their labels."""
    from paperlab.tsv.data import SPLITS, Item, check_disjoint, gold_items

    if cfg.mode == "gold" and not cfg.answers_file:
        items = gold_items(questions, parts, cfg.answers_per_question)
        labelling = {"method": "gold (TruthfulQA reference answers)", "answers_per_question": cfg.answers_per_question}
    else:
        split_of = {r: s for s in SPLITS for r in parts[s]}
        if cfg.answers_file:
            recs = [r for r in read_answers_file(cfg.answers_file, parts) if r["row"] in split_of]
            items = [Item(r["row"], split_of[r["row"]], r["answer"].strip(), r.get("label"), "file") for r in recs]
            order = {r: i for i, r in enumerate(split_of)}
            items.sort(key=lambda it: order[it.row])  # by split, in the split's question order
        else:
            from paperlab.core.models import load_lm
            from paperlab.tsv.labelling import generate_answers

            rows = list(split_of)
            answers = generate_answers(load_lm(cfg.model), [questions[r].question for r in rows], cfg.max_new_tokens,
                                       on_result=progress)
            items = [Item(r, split_of[r], a) for r, a in zip(rows, answers, strict=True)]
        labelling = label_items(cfg, questions, items)
    # the paper's N labelled exemplars are answers
    ex = [it for it in items if it.split == "exemplar"][: cfg.n_exemplars]
    items = ex + [it for it in items if it.split != "exemplar"]
    check_disjoint(items)
    return Items(items, [questions[it.row].question for it in items], labelling)


def label_items(cfg: TSVConfig, questions, items) -> dict:
    """Label answers without labels by reference similarity; agreement with the hand-labelled sample."""
    from paperlab.tsv.labelling import label_answers

    if all(it.label is not None for it in items):
        return {"method": "given (answers file)"}
    refs_c = [questions[it.row].correct for it in items]
    refs_i = [questions[it.row].incorrect for it in items]
    answers = [it.answer for it in items]
    lab = {m: label_answers(answers, refs_c, refs_i, m) for m in ("embed", "rouge")}
    for j, it in enumerate(items):
        it.label = lab[cfg.labeller].labels[j]
    recs = [{"row": it.row, "answer": it.answer, "label_embed": lab["embed"].labels[j],
             "label_rouge": lab["rouge"].labels[j]} for j, it in enumerate(items)]
    return {"method": cfg.labeller, "hand_agreement": hand_label_agreement(recs)}


def hand_label_agreement(records: list[dict]) -> dict:
    """Agreement of each labeller with the packaged hand labels, on answers identical to the sample's."""
    from paperlab.core.data import data_path, read_jsonl
    from paperlab.tsv.labelling import agreement

    hand = {(r["row"], r["answer"]): int(r["label"]) for r in read_jsonl(data_path("truthfulqa", "hand_labels.jsonl"))}
    matched = [(rec, hand[(rec["row"], rec["answer"])]) for rec in records if (rec["row"], rec["answer"]) in hand]
    out: dict = {"sample_size": len(hand), "matched": len(matched)}
    for m in ("embed", "rouge"):
        out[m] = agreement([h for _, h in matched], [rec[f"label_{m}"] for rec, _ in matched])
    out["embed_vs_rouge_all"] = agreement([r["label_embed"] for r in records], [r["label_rouge"] for r in records])
    out["hand_truthful_rate"] = float(np.mean([h for _, h in matched])) if matched else float("nan")
    return out


# ------------------------------------------------------------------------------------------
# Step 2: one frozen forward per answer
# ------------------------------------------------------------------------------------------


def frozen_forward(model, tok, data: Items, layer: int, cfg: TSVConfig, progress=None):
    """The prefix cache (with raw embeddings and log p(a|q)) and log p(a) with the question left out."""
    from paperlab.tsv.labelling import uses_chat
    from paperlab.tsv.steering import answer_logprob_sums, encode_answers, encode_dataset

    answers = [it.answer for it in data.items]
    enc = encode_answers(tok, data.questions, answers, max_length=cfg.max_length)
    cache = encode_dataset(model, enc, layer, batch_size=cfg.micro_batch, progress=progress)
    alone = encode_answers(tok, [""] * len(answers), answers, max_length=cfg.max_length)
    logp_alone = answer_logprob_sums(model, alone, batch_size=cfg.micro_batch).numpy()
    return cache, logp_alone, uses_chat(tok)


# ------------------------------------------------------------------------------------------
# Step 3: baselines
# ------------------------------------------------------------------------------------------


def baseline_scores(cache, logp_alone, data: Items, cfg: TSVConfig) -> tuple[dict, dict, dict]:
    """Validation and test scores of every baseline, and what was fitted or picked on validation."""
    from paperlab.tsv.baselines import (
        fit_probe,
        orient,
        perplexity_scores,
        pmi_scores,
        probe_scores,
        prototype_scores,
        qa_cosine_scores,
    )

    y = data.y
    ex, val, te, wi = (data.pos(s) for s in ("exemplar", "val", "test", "wild"))
    raw = {"perplexity": perplexity_scores(cache.answer_logprob),
           "pmi": pmi_scores(cache.answer_logprob_sum.numpy(), logp_alone),
           "qa_cosine": qa_cosine_scores(data.questions, [it.answer for it in data.items])}
    fitted: dict = {"direction": {}}
    val_s, test_s = {}, {}
    for m, s in raw.items():
        sign = orient(y[val], s[val])
        fitted["direction"][m] = sign
        val_s[m], test_s[m] = sign * s[val], sign * s[te]
    emb = cache.embeddings
    val_s["raw_prototypes"] = prototype_scores(emb[ex], y[ex], emb[val], tau=cfg.tau)
    test_s["raw_prototypes"] = prototype_scores(emb[ex], y[ex], emb[te], tau=cfg.tau)
    e = emb.numpy()
    probe = fit_probe(e[ex], y[ex], e[val], y[val], seed=cfg.seed)
    val_s["probe"], test_s["probe"] = probe_scores(probe, e[val]), probe_scores(probe, e[te])
    fitted["probe_C"] = float(probe.C)
    if wi and len(set(y[wi].tolist())) == 2:
        sup = fit_probe(e[wi], y[wi], e[val], y[val], seed=cfg.seed)
        val_s["supervised_probe"], test_s["supervised_probe"] = probe_scores(sup, e[val]), probe_scores(sup, e[te])
        fitted["supervised_probe_C"] = float(sup.C)
    return val_s, test_s, fitted


# ------------------------------------------------------------------------------------------
# Step 4: TSV -- grid on validation, then stage 2 per seed
# ------------------------------------------------------------------------------------------


@dataclass
class TSVRuns:
    grid: list  # list[GridRun]: stage 1 of every (lambda, lr, seed)
    lam: float
    lr: float
    norm: float
    finals: list  # list[TSVResult]: the selected setting, stage 1 + 2, one per seed
    hp: object  # TSVHyper of the selected setting (seed of the first run)


def train_tsv(model, cache, data: Items, layer: int, cfg: TSVConfig, progress=None) -> TSVRuns:
    from paperlab.tsv.training import (
        TSVHyper,
        TSVTrainer,
        clone_hyper,
        residual_norm,
        select_setting,
        stage1_grid,
    )

    y = data.y
    ex, val, wi = data.pos("exemplar"), data.pos("val"), data.pos("wild")
    norm = residual_norm(cache, ex)
    base = TSVHyper(layer=layer, lam=PAPER_LAMBDA, tau=cfg.tau, ema_decay=cfg.ema_decay, lr=cfg.lr_grid[0],
                    batch_size=cfg.batch_size, stage1_epochs=cfg.stage1_epochs, stage2_epochs=cfg.stage2_epochs,
                    k=cfg.k, sinkhorn_eps=cfg.sinkhorn_eps, sinkhorn_iters=cfg.sinkhorn_iters,
                    micro_batch=cfg.micro_batch, val_every=cfg.val_every, seed=cfg.seed)
    grid = stage1_grid(model, cache, base, cfg.lambdas(norm), cfg.lrs(), cfg.seed_list(), ex, y[ex].tolist(),
                       val, y[val].tolist(), norm, progress=progress)
    lam, lr = select_setting(grid)
    finals = []
    for g in grid:
        if (g.lam, g.lr) != (lam, lr):
            continue
        hp = clone_hyper(base, lam=lam, lr=lr, seed=g.seed)
        tr = TSVTrainer(model, cache, hp, progress=progress)
        finals.append(tr.fit_stage2(g.result, ex, y[ex].tolist(), wi, val, y[val].tolist()))
    return TSVRuns(grid, lam, lr, norm, finals, clone_hyper(base, lam=lam, lr=lr))


def tsv_test_scores(model, cache, runs: TSVRuns, idx: Sequence[int]) -> dict[str, list[np.ndarray]]:
    """Scores of every seed's selected stage-1 and stage-1 + OT detector on cached inputs ``idx``."""
    import torch

    from paperlab.core.internals import model_device
    from paperlab.tsv.prototypes import VMFPrototypes
    from paperlab.tsv.steering import SteeringVector
    from paperlab.tsv.training import truth_scores

    out: dict[str, list[np.ndarray]] = {"tsv_stage1": [], "tsv": []}
    hp = runs.hp
    for res in runs.finals:
        for name, st in (("tsv_stage1", res.stage1), ("tsv", res.stage2 or res.stage1)):
            steer = SteeringVector(st.v.numel(), hp.lam).to(model_device(model))
            with torch.no_grad():
                steer.v.copy_(st.v)
            protos = VMFPrototypes(st.v.numel(), 2, tau=hp.tau, mu=st.mu)
            out[name].append(truth_scores(model, cache, idx, steer, protos, hp.micro_batch))
    return out


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


def run_experiment(cfg: TSVConfig, out: Path | None = None) -> Path:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from paperlab.core.internals import decoder_layers
    from paperlab.core.models import load_torch_model
    from paperlab.tsv.data import load_truthfulqa
    from paperlab.tsv.training import default_layer

    torch.set_num_threads(cfg.threads)
    questions = load_truthfulqa()
    parts = split_parts(cfg, len(questions))
    if cfg.answers_file:  # a bad file is an error before the run folder exists
        read_answers_file(cfg.answers_file, parts)
    run = Run("tsv", out, cfg)
    t_start, cpu_start = time.time(), time.process_time()
    timings: dict[str, float] = {}
    t0 = time.time()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = round(time.time() - t0, 1)
        t0 = time.time()

    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols) as prog:
        n_rows = sum(len(v) for v in parts.values())
        task = prog.add_task("answers", total=n_rows)
        data = collect_items(cfg, questions, parts, progress=lambda *_: prog.advance(task))
        prog.update(task, completed=n_rows)
        lap("answers_and_labels")
        y = data.y
        for name in ("exemplar", "val", "test"):
            if len(set(y[data.pos(name)].tolist())) < 2:
                raise UserError(f"the {name} split has only one label class ({data.labelling['method']})",
                                "use more questions or another --labeller")

        model, tok = load_torch_model(cfg.model)
        n_layers = len(decoder_layers(model))
        layer = cfg.layer if cfg.layer is not None else default_layer(n_layers)
        if layer >= n_layers - 1:
            raise UserError(f"steering layer {layer} leaves no block after it ({n_layers} blocks)",
                            f"use --layer between 0 and {n_layers - 2}")
        task2 = prog.add_task("frozen forward (prefix cache)", total=len(data.items))
        cache, logp_alone, chat = frozen_forward(model, tok, data, layer, cfg,
                                                 progress=lambda n: prog.advance(task2, n))
        lap("frozen_forward")

    val, te = data.pos("val"), data.pos("test")
    val_s, test_s, fitted = baseline_scores(cache, logp_alone, data, cfg)
    lap("baselines")

    with Progress(*cols) as prog:
        task = prog.add_task("TSV training", total=None)
        runs = train_tsv(model, cache, data, layer, cfg, progress=lambda msg: prog.update(task, description=msg))
    lap("tsv_training")
    scores: dict = dict(test_s)
    scores.update(tsv_test_scores(model, cache, runs, te))
    lap("tsv_scoring")

    det_check = save_detector(run, cfg, runs, layer, chat, data, scores["tsv"][0], model, tok)
    lap("detector_check")

    # statistics, claims, report ------------------------------------------------------------------
    y_te = y[te]
    flat = {m: (s[0] if isinstance(s, list) else s) for m, s in scores.items()}  # seed-0 run for curves
    test_auroc = {m: float(np.mean([auroc(y_te, r) for r in _as_runs(s)])) for m, s in scores.items()}
    seed_auroc = {m: [auroc(y_te, r) for r in s] for m, s in scores.items() if isinstance(s, list)}
    cis = {m: auroc_ci(y_te, flat[m], n_boot=cfg.bootstrap, seed=cfg.seed) for m in scores}
    q_te = [data.items[i].row for i in te]   # the bootstrap resamples questions, not answers
    diffs = {m: mean_auroc_diff(y_te, scores["tsv"], s, groups=q_te, n_boot=cfg.bootstrap, seed=cfg.seed)
             for m, s in scores.items() if m != "tsv"}
    val_auroc = {m: auroc(y[val], s) for m, s in val_s.items()}
    # TSV's validation AUROC at its selected epochs (seed mean), as logged during training
    val_auroc["tsv_stage1"] = float(np.mean([f.log1.best_val_auroc for f in runs.finals]))
    val_auroc["tsv"] = float(np.mean([(f.log2 if f.stage2 is not None else f.log1).best_val_auroc
                                      for f in runs.finals]))
    claims = make_claims(y_te, scores, cfg, groups=q_te)
    write_records(run, data, te, scores)

    grid_rows = [{"lambda": g.lam, "lambda_rel": g.lam_rel, "lr": g.lr, "seed": g.seed,
                  "best_epoch": g.result.log1.best_epoch, "val_auroc": g.val_auroc,
                  "v_norm": float(g.result.stage1.v.norm())} for g in runs.grid]
    results = {
        "mode": cfg.mode, "chat_context": chat,
        "test_auroc": test_auroc, "test_auroc_per_seed": seed_auroc,
        "test_auroc_ci95": {m: [e.lo, e.hi] for m, e in cis.items()},
        "tsv_minus_method_ci95": {m: [e.lo, e.hi] for m, e in diffs.items()},
        "tsv_minus_method": {m: e.value for m, e in diffs.items()},
        "val_auroc": val_auroc,
        "n": {p: len(data.pos(p)) for p in ("exemplar", "wild", "val", "test")},
        "questions": {p: len(v) for p, v in parts.items()},
        "truthful_rate": {p: float(y[data.pos(p)].mean()) if data.pos(p) else None
                          for p in ("exemplar", "wild", "val", "test")},
        "layer": layer, "n_layers": n_layers,
        "residual_norm": runs.norm,
        "selected": {"lambda": runs.lam, "lambda_rel": runs.lam / runs.norm, "lr": runs.lr,
                     "settings_tried": len({(g.lam, g.lr) for g in runs.grid}), "seeds": cfg.seed_list()},
        "grid": grid_rows,
        "finals": [final_summary(r, data, runs) for r in runs.finals],
        "class_prior": runs.finals[0].class_prior,
        **fitted,
        "labelling": data.labelling,
        "detector": det_check,
        "seconds": timings, "cpu_seconds_over_threads": round((time.process_time() - cpu_start) / cfg.threads, 1),
        "wall_seconds": round(time.time() - t_start, 1),
    }
    plot(run, y_te, flat, {m: auroc(y_te, s) for m, s in flat.items()}, results["test_auroc_ci95"], runs.finals[0])
    run.finish(claims, results=results, sections=report_sections(results, cfg, claims), scale_note=SCALE_NOTE,
               title="TSV: steering LLM latents for hallucination detection", paper=PAPER)
    return run.dir


def final_summary(res, data: Items, runs: TSVRuns) -> dict:
    wi = data.pos("wild")
    return {"seed": res.hyper["seed"],
            "stage1": {"epochs": res.log1.epochs, "loss": res.log1.loss, "val_auroc": res.log1.val_auroc,
                       "best_epoch": res.log1.best_epoch},
            "stage2": {"epochs": res.log2.epochs, "loss": res.log2.loss, "val_auroc": res.log2.val_auroc,
                       "best_epoch": res.log2.best_epoch, "selected": len(res.selected),
                       "selected_label_accuracy": _pseudo_acc(res, wi, data.y)},
            "v_norm": float((res.stage2 or res.stage1).v.norm()),
            # how large the edit lambda * v is next to the residual stream it is added to
            "edit_over_residual": float(runs.lam * (res.stage2 or res.stage1).v.norm() / runs.norm)}


def save_detector(run: Run, cfg: TSVConfig, runs: TSVRuns, layer: int, chat: bool, data: Items, tsv_scores,
                  model, tok) -> dict:
    """Save the first seed's final detector; re-load it and re-score a few test answers by full forwards."""
    from paperlab.tsv.detector import Detector

    final = runs.finals[0].stage2 or runs.finals[0].stage1
    det = Detector(model=cfg.model, layer=layer, lam=runs.lam, tau=cfg.tau, v=final.v, mu=final.mu,
                   max_length=cfg.max_length, chat=chat, config=cfg.model_dump())
    det_dir = det.save(run.dir / "detector")
    te = data.pos("test")
    check = te[: min(8, len(te))]
    again = Detector.load(det_dir).score([data.questions[j] for j in check], [data.items[j].answer for j in check],
                                         model=model, tokenizer=tok)
    diff = float(np.max(np.abs(np.asarray(again) - np.asarray(tsv_scores)[: len(check)])))
    return {"path": str(det_dir), "reload_max_abs_diff": diff, "checked": len(check), "seed": runs.finals[0].hyper["seed"]}


def write_records(run: Run, data: Items, te: Sequence[int], scores: dict) -> None:
    for j, it in enumerate(data.items):
        run.append("answers", {"row": it.row, "split": it.split, "question": data.questions[j], "answer": it.answer,
                               "label": it.label, "source": it.source})
    lines = []
    for k, j in enumerate(te):
        it = data.items[j]
        rec = {"row": it.row, "question": data.questions[j], "answer": it.answer, "label": it.label}
        for m, s in scores.items():
            rec[f"score_{m}"] = float(_as_runs(s)[0][k])
        lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
    (run.dir / "test_scores.jsonl").write_text("".join(lines), encoding="utf-8")


def _pseudo_acc(res, wild_pos, y) -> float | None:
    """How often the selected pseudo-labels' argmax matches the (hidden) wild labels."""
    if not res.selected:
        return None
    true = [int(y[wild_pos[j]]) for j in res.selected]
    pred = [int(np.argmax(p)) for p in res.pseudo_labels]
    return float(np.mean([a == b for a, b in zip(true, pred, strict=True)]))


SCALE_NOTE = """
- **Model**: SmolLM2-135M-Instruct (30 blocks, width 576) instead of LLaMA-3.1-8B / Qwen-2.5-7B. The
  steering layer keeps the paper's relative depth (block 9 of 32 -> block 8 of 30, `--layer`); tau, EMA
  decay, batch size, Sinkhorn eps/iterations are the paper's.
- **Answers** (`--mode`): `gold` (the quick default) scores TruthfulQA's own reference answers -- per
  question its best answer and an incorrect one -- with the dataset's labels, so the claim is tested
  offline on exact labels. `paper` (the full default) scores the LM's greedy answers (the paper: beam
  search with 5 beams) labelled by similarity to the references (BLEURT is not available offline; ROUGE-L
  margin by default), whose agreement with a hand-labelled sample is reported. Either way every answer
  sits in the chat context it was (or would have been) generated in: the model's chat template, the
  paper's prompt as the user turn.
- **Lambda, learning rate, epochs** are selected on the validation split (mean best-epoch AUROC over the
  training seeds): lambda from the paper's 5 and multiples of the layer's median residual norm (`--lambda-rel`),
  the learning rate from `--lr-grid` (paper: 5e-3). With 32 exemplars and batch 128, stage 1 takes one
  optimiser step per epoch (as in the official code), so at the paper's lambda and lr the edit lambda * v
  stays small next to the residual stream; the report gives its size.
- **Model selection** uses the 68 held-out non-exemplar questions of the official split (validation); the
  official code selects the best epoch on the test split, which we never do.
- **Statistics**: TSV's AUROC is averaged over the training seeds; intervals are paired stratified bootstraps
  over the test answers (two answers per question in gold mode are not independent, so they are a little
  narrow); the seeds' spread is reported next to them.
- **Quick run** (`--quick`): gold mode, 32 of the 512 wild questions, 24 of the 68 validation questions,
  the first 80 of the 205 test questions (2 answers each), 4 + 2 epochs (paper: 20 + 20), k = 24
  pseudo-labels (paper: 128), validation every 2nd epoch, a 2 x 2 grid (lambda: the paper's 5 or 0.3 x the
  residual norm; lr: 5e-3 or 5e-2), 3 seeds. The full run: the paper's sizes and protocol (`--mode paper`),
  20 + 20 epochs, lambda in {5, 0.1, 0.3 x residual norm} x lr in {5e-3, 2e-2, 5e-2}, 3 seeds.
"""


def report_sections(r: dict, cfg: TSVConfig, claims: Sequence[Claim]) -> list[str]:
    rows = []
    for m in METHODS:
        if m not in r["test_auroc"]:
            continue
        lo, hi = r["test_auroc_ci95"][m]
        d = r["tsv_minus_method_ci95"].get(m)
        seeds = r["test_auroc_per_seed"].get(m)
        spread = "-" if not seeds else f"{min(seeds):.3f} .. {max(seeds):.3f}"
        rows.append([LABELS[m], r["test_auroc"][m], f"[{lo:.3f}, {hi:.3f}]", spread, r["val_auroc"].get(m, float("nan")),
                     "-" if d is None else f"{r['tsv_minus_method'][m]:+.3f} [{d[0]:+.3f}, {d[1]:+.3f}]"])
    n, tr, sel = r["n"], r["truthful_rate"], r["selected"]
    grid = {}
    for g in r["grid"]:
        grid.setdefault((g["lambda"], g["lr"]), []).append(g)
    grid_rows = [[f"{lam:.3g}", f"{gs[0]['lambda_rel']:.3g}", f"{lr:.3g}",
                  float(np.mean([g["val_auroc"] for g in gs])),
                  f"{min(g['val_auroc'] for g in gs):.3f} .. {max(g['val_auroc'] for g in gs):.3f}",
                  ", ".join(str(g["best_epoch"]) for g in gs),
                  "**selected**" if (lam, lr) == (sel["lambda"], sel["lr"]) else ""]
                 for (lam, lr), gs in grid.items()]
    fin = r["finals"]
    out = [
        "## Does TSV beat the baselines?", "",
        *plain_verdicts(claims), "",
        "## Test AUROC (hallucination detection, truthful = positive class)", "",
        markdown_table(["method", "test AUROC", "95% CI (seed 0)", "over seeds", "val AUROC",
                        "TSV minus method, paired 95% CI"], rows), "",
        f"TSV rows: mean over {len(sel['seeds'])} training seeds {sel['seeds']}; 'over seeds' is their range. "
        f"Bootstrap: the AUROC differences that decide the claims resample test questions ({cfg.bootstrap} "
        "resamples; all answers of a question together, paired across methods); the per-method AUROC intervals "
        "resample answers, stratified by label. "
        f"Direction of the label-free scores picked on validation: {r['direction']} (+1: higher = truthful). "
        f"Probe C = {r['probe_C']:g} (validation). Per-answer scores: `test_scores.jsonl`.", "",
        "## Selection of lambda, learning rate and epochs (validation split, stage 1)", "",
        markdown_table(["lambda", "lambda / residual norm", "lr", "mean val AUROC", "over seeds", "best epochs",
                        ""], grid_rows), "",
        f"Median residual norm at block {r['layer']}: {r['residual_norm']:.1f} per token. Selected: lambda "
        f"{sel['lambda']:.3g} ({sel['lambda_rel']:.3g} x the residual norm), lr {sel['lr']:.3g}. Final edit size "
        f"lambda |v| / residual norm per seed: {_join(f['edit_over_residual'] for f in fin)}. "
        f"Stage-2 best epochs per seed: {', '.join(str(f['stage2']['best_epoch']) for f in fin)}; its pseudo-labels "
        f"match the hidden labels for {', '.join(_pct(f['stage2']['selected_label_accuracy']) for f in fin)} of the "
        "selected wild answers.", "",
        "## Data and labels", "",
        markdown_table(["split", "questions", "answers", "truthful rate"],
                       [[p, r["questions"][p], n[p], tr[p]] for p in ("exemplar", "wild", "val", "test")]), "",
        f"Mode `{r['mode']}`; labels: {r['labelling']['method']}; answers embedded in the chat template: "
        f"{r['chat_context']}.",
    ]
    ag = r["labelling"].get("hand_agreement")
    if ag:
        out += ["", f"Hand-labelled sample: {ag['matched']} of {ag['sample_size']} answers reproduced exactly in this "
                f"run; agreement with the hand labels: MiniLM-margin {ag['embed']['accuracy']:.2f} (kappa "
                f"{ag['embed']['kappa']:.2f}), ROUGE-L-margin {ag['rouge']['accuracy']:.2f} (kappa "
                f"{ag['rouge']['kappa']:.2f})."]
    dc = r["detector"]
    out += ["", f"Detector (seed {dc['seed']}) saved to `detector/`; re-loaded and re-scored on {dc['checked']} test "
            f"answers by full forward passes: max |difference| = {dc['reload_max_abs_diff']:.2e}.", "",
            "Timings (s): " + ", ".join(f"{k} {v}" for k, v in r["seconds"].items())
            + f"; CPU time / threads {r['cpu_seconds_over_threads']} s (an estimate of the wall time on an idle "
            "machine)."]
    return out
def _join(xs) -> str:
    return ", ".join(f"{x:.3f}" for x in xs)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def plot(run: Run, y_te, scores: dict, test_auroc: dict, test_ci: dict, res) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    names = [m for m in METHODS if m in scores]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    vals = [test_auroc[m] for m in names]
    err = np.array([[test_auroc[m] - test_ci[m][0], test_ci[m][1] - test_auroc[m]] for m in names]).T
    colors = ["#1f4e79" if m == "tsv" else "#6fa8dc" if m == "tsv_stage1" else "#aaaaaa" for m in names]
    ax.bar(range(len(names)), vals, yerr=err, color=colors, capsize=4)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), [SHORT[m] for m in names], fontsize=8, rotation=15)
    ax.set_ylabel("test AUROC")
    ax.set_ylim(0.3, 1.0)
    run.savefig(fig, "auroc", "Test AUROC per method with 95% bootstrap CIs (TSV: first seed; dotted: chance)")

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for m in names:
        fpr, tpr, _ = roc_curve(y_te, scores[m])
        ax.plot(fpr, tpr, label=f"{m} ({test_auroc[m]:.3f})", lw=2 if m.startswith("tsv") else 1)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
    run.savefig(fig, "roc", "ROC curves on the test split (truthful = positive)")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    e1 = res.log1.epochs
    e2 = [e1[-1] + e for e in res.log2.epochs]
    axes[0].plot(e1, res.log1.loss, "o-", ms=3, label="stage 1 (exemplars)")
    axes[0].plot(e2, res.log2.loss, "o-", ms=3, label="stage 2 (+ OT pseudo-labels)")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize=7)
    for es, vs in ((e1, res.log1.val_auroc), (e2, res.log2.val_auroc)):
        pts = [(e, v) for e, v in zip(es, vs, strict=True) if v == v]  # epochs that were validated
        axes[1].plot([e for e, _ in pts], [v for _, v in pts], "o-", ms=3)
    for e, off in ((res.log1.best_epoch, 0), (res.log2.best_epoch, e1[-1])):
        if e > 0:
            axes[1].axvline(off + e, color="gray", ls=":", lw=0.8)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation AUROC")
    run.savefig(fig, "training", "TSV training loss and validation AUROC per epoch (dotted: selected epochs)")


def default_config(quick: bool = False, **overrides) -> TSVConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return build_config(TSVConfig, "tsv", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)
