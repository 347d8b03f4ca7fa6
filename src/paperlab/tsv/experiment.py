"""``paperlab tsv run``: TSV on TruthfulQA with the paper's split, baselines, claims and a report.

Pipeline (every step on this run's own data):

1. answers: one greedy answer per question from the LM (``load_lm``; cached, resumable);
2. labels: similarity to correct vs. incorrect references (:mod:`paperlab.tsv.labelling`), with
   agreement against the packaged hand-labelled sample;
3. one frozen forward per (question, answer): cache of :math:`h_l`, unsteered embedding, answer
   log-prob (:func:`paperlab.tsv.steering.encode_dataset`);
4. baselines: perplexity, raw-embedding prototypes, logistic probe (same 32 exemplars);
5. TSV stage 1 and stage 1 + OT (:class:`paperlab.tsv.training.TSVTrainer`), epochs selected on
   the validation split;
6. test AUROC with stratified bootstrap CIs, paired with TSV for the differences that decide the
   claims (:func:`make_claims`), plots; the final detector is saved to ``<run>/detector`` and
   re-loaded to check it reproduces its test scores.

Claims: ``tsv_beats_baselines``, ``tsv_ot_stage``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.errors import UserError
from paperlab.core.runs import Claim, Run, build_config, claim, markdown_table
from paperlab.core.stats import auroc, auroc_ci, auroc_diff

PAPER = "How to Steer LLM Latents for Hallucination Detection? (Park et al., ICML 2025, arXiv 2503.01917)"
METHODS = ("perplexity", "raw_prototypes", "probe", "tsv_stage1", "tsv")
LABELS = {
    "perplexity": "Perplexity (mean answer log-prob)",
    "raw_prototypes": "Raw-embedding prototypes (same exemplars)",
    "probe": "Logistic probe (same exemplars)",
    "supervised_probe": "Logistic probe, all wild labels (reference)",
    "tsv_stage1": "TSV stage 1 only",
    "tsv": "TSV stage 1 + OT (full method)",
}
SHORT = {"perplexity": "perplexity", "raw_prototypes": "raw prototypes", "probe": "probe",
         "supervised_probe": "probe, all labels\n(reference)", "tsv_stage1": "TSV stage 1", "tsv": "TSV + OT"}
BASELINES = ("perplexity", "raw_prototypes", "probe")


class TSVConfig(BaseModel):
    """Configuration of a TSV run (saved with it). Algorithm defaults are the paper's."""

    model: str = "default"
    labeller: str = "rouge"
    max_new_tokens: int = Field(64, ge=1)
    max_length: int = Field(256, ge=16)
    n_wild: int | None = Field(None, ge=1, description="wild (unlabelled) questions; None = all 512")
    n_test: int | None = Field(None, ge=4, description="test questions; None = all 205")
    n_val: int | None = Field(None, ge=2, description="validation questions; None = all 68")
    n_exemplars: int | None = Field(None, ge=2, description="labelled exemplars; None = the paper's 32")
    answers_file: str | None = Field(None, description="JSONL {row, answer}: use these answers, no generation")
    layer: int | None = Field(None, ge=0, description="steering layer; None = round(9/32 * depth)")
    lam: float = 5.0
    tau: float = Field(0.1, gt=0)
    ema_decay: float = Field(0.99, ge=0, lt=1)
    lr: float = Field(5e-3, gt=0)
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

    @classmethod
    def quick(cls, **kw) -> TSVConfig:
        base = dict(n_wild=64, n_test=100, stage1_epochs=10, stage2_epochs=6, k=32, val_every=2)
        return cls(**{**base, **kw})


# ------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------


def make_claims(y_test, scores: dict[str, np.ndarray], cfg: TSVConfig) -> list[Claim]:
    """The paper's claims, decided on paired AUROC differences over the test questions.

    ``scores[m][i]`` is method ``m``'s truthfulness score of test answer ``i`` (label ``y_test[i]``).
    Every difference is a paired stratified bootstrap over the same test questions
    (:func:`paperlab.core.stats.auroc_diff`): TSV and each baseline score the same answers. One
    training seed: the interval covers which test questions were drawn, not training variation.
    """
    note = (f"one training run (seed {cfg.seed}); the interval is over test questions, so it covers "
            "evaluation noise only, not variation between training seeds")
    d = {m: auroc_diff(y_test, scores["tsv"], scores[m], n_boot=cfg.bootstrap, seed=cfg.seed)
         for m in (*BASELINES, "tsv_stage1")}
    test_auroc = {m: auroc(y_test, scores[m]) for m in ("tsv", "tsv_stage1", *BASELINES)}
    return [
        claim("tsv_beats_baselines",
              "Test AUROC of TSV (stage 1 + OT) is above the perplexity, raw-prototype and probe baselines "
              "(paired AUROC difference over test questions, each > 0)",
              {f"tsv - {b}": d[b] for b in BASELINES}, expect="greater",
              tsv=test_auroc["tsv"], **{b: test_auroc[b] for b in BASELINES}, note=note),
        claim("tsv_ot_stage", "Stage 2 (Sinkhorn pseudo-labels + retraining) raises test AUROC over stage 1 alone "
              "(paired AUROC difference over test questions > 0)",
              d["tsv_stage1"], expect="greater", stage1=test_auroc["tsv_stage1"],
              stage1_plus_ot=test_auroc["tsv"], note=note),
    ]


# ------------------------------------------------------------------------------------------
# Hand-label agreement
# ------------------------------------------------------------------------------------------


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
# The run
# ------------------------------------------------------------------------------------------


def run_experiment(cfg: TSVConfig, out: Path | None = None) -> Path:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from paperlab.core.internals import decoder_layers
    from paperlab.core.models import load_lm, load_torch_model
    from paperlab.tsv.baselines import fit_probe, perplexity_scores, probe_scores, prototype_scores
    from paperlab.tsv.data import load_truthfulqa, paper_split
    from paperlab.tsv.detector import Detector
    from paperlab.tsv.labelling import answer_prompt, generate_answers, label_answers
    from paperlab.tsv.steering import encode_dataset, encode_texts
    from paperlab.tsv.training import TSVHyper, TSVTrainer, default_layer

    torch.set_num_threads(cfg.threads)
    run = Run("tsv", out, cfg)
    t_start, cpu_start = time.time(), time.process_time()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        timings[name] = round(time.time() - t0, 1)
        return time.time()

    questions = load_truthfulqa()
    split = paper_split(len(questions))
    parts = {"exemplar": split.exemplars[: cfg.n_exemplars], "val": split.val[: cfg.n_val],
             "test": split.test[: cfg.n_test], "wild": split.wild[: cfg.n_wild]}
    rows = [r for p in ("exemplar", "val", "test", "wild") for r in parts[p]]
    part_of = {r: p for p, rs in parts.items() for r in rs}

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as prog:
        # 1. answers --------------------------------------------------------------------------
        t0 = time.time()
        task = prog.add_task("answers (LM)", total=len(rows))
        if cfg.answers_file:
            answers = load_answers(cfg.answers_file, rows)
            prog.advance(task, len(rows))
        else:
            lm = load_lm(cfg.model)
            answers = generate_answers(lm, [questions[r].question for r in rows], cfg.max_new_tokens,
                                       on_result=lambda *_: prog.advance(task))
        t0 = lap("answers", t0)

        # 2. labels -----------------------------------------------------------------------------
        prog.update(task, description="labels")
        refs_c = [questions[r].correct for r in rows]
        refs_i = [questions[r].incorrect for r in rows]
        lab = {m: label_answers(answers, refs_c, refs_i, m) for m in ("embed", "rouge")}
        y_all = lab[cfg.labeller].labels
        records = []
        for j, r in enumerate(rows):
            records.append({"row": r, "split": part_of[r], "question": questions[r].question, "answer": answers[j],
                            "label": y_all[j], "label_embed": lab["embed"].labels[j],
                            "label_rouge": lab["rouge"].labels[j], "margin_embed": lab["embed"].margin[j],
                            "margin_rouge": lab["rouge"].margin[j]})
        agree = hand_label_agreement(records)
        t0 = lap("labels", t0)

        # 3. frozen forward: prefix cache, raw embeddings, answer log-probs ---------------------
        model, tok = load_torch_model(cfg.model)
        n_layers = len(decoder_layers(model))
        layer = cfg.layer if cfg.layer is not None else default_layer(n_layers)
        if layer >= n_layers - 1:
            raise UserError(f"steering layer {layer} leaves no block after it ({n_layers} blocks)",
                            f"use --layer between 0 and {n_layers - 2}")
        t0 = lap("load_torch_model", t0)
        enc = encode_texts(tok, [answer_prompt(questions[r].question) for r in rows], [" " + a for a in answers],
                           max_length=cfg.max_length)
        task2 = prog.add_task("frozen forward (prefix cache)", total=len(rows))
        cache = encode_dataset(model, enc, layer, batch_size=cfg.micro_batch,
                               progress=lambda n: prog.advance(task2, n))
        t0 = lap("prefix_cache", t0)

    pos = {p: [j for j, r in enumerate(rows) if part_of[r] == p] for p in parts}
    y = np.asarray(y_all)
    ex, val, te, wi = pos["exemplar"], pos["val"], pos["test"], pos["wild"]
    for name, idx in (("exemplar", ex), ("validation", val), ("test", te)):
        if len(set(y[idx].tolist())) < 2:
            raise UserError(f"the {name} split has only one label class with labeller '{cfg.labeller}'",
                            "use more questions or another --labeller")

    # 4. baselines --------------------------------------------------------------------------------
    emb = cache.embeddings
    scores: dict[str, np.ndarray] = {}
    val_scores: dict[str, np.ndarray] = {}
    lp = perplexity_scores(cache.answer_logprob)
    scores["perplexity"], val_scores["perplexity"] = lp[te], lp[val]
    scores["raw_prototypes"] = prototype_scores(emb[ex], y[ex], emb[te], tau=cfg.tau)
    val_scores["raw_prototypes"] = prototype_scores(emb[ex], y[ex], emb[val], tau=cfg.tau)
    e_np = emb.numpy()
    probe = fit_probe(e_np[ex], y[ex], e_np[val], y[val], seed=cfg.seed)
    scores["probe"], val_scores["probe"] = probe_scores(probe, e_np[te]), probe_scores(probe, e_np[val])
    sup = None
    if len(set(y[wi].tolist())) == 2:
        sup = fit_probe(e_np[wi], y[wi], e_np[val], y[val], seed=cfg.seed)
        scores["supervised_probe"] = probe_scores(sup, e_np[te])
        val_scores["supervised_probe"] = probe_scores(sup, e_np[val])

    # 5. TSV ----------------------------------------------------------------------------------------
    hp = TSVHyper(layer=layer, lam=cfg.lam, tau=cfg.tau, ema_decay=cfg.ema_decay, lr=cfg.lr,
                  batch_size=cfg.batch_size, stage1_epochs=cfg.stage1_epochs, stage2_epochs=cfg.stage2_epochs,
                  k=cfg.k, sinkhorn_eps=cfg.sinkhorn_eps, sinkhorn_iters=cfg.sinkhorn_iters,
                  micro_batch=cfg.micro_batch, val_every=cfg.val_every, seed=cfg.seed)
    total_epochs = cfg.stage1_epochs + (cfg.stage2_epochs if wi else 0)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as prog:
        task = prog.add_task("TSV training", total=total_epochs)

        def report(msg: str) -> None:
            prog.update(task, description=msg)
            prog.advance(task)

        trainer = TSVTrainer(model, cache, hp, progress=report)
        res = trainer.fit(ex, y[ex].tolist(), wi, val, y[val].tolist(), stage2=True)
    t0 = lap("tsv_training", t0)

    for name, st in (("tsv_stage1", res.stage1), ("tsv", res.stage2 or res.stage1)):
        trainer.load(st)
        scores[name] = trainer.scores(te)
        val_scores[name] = trainer.scores(val)
    t0 = lap("tsv_scoring", t0)

    # 6. detector: save, reload, re-score a few test pairs with full (uncached) forwards ---------
    final = res.stage2 or res.stage1
    det = Detector(model=cfg.model, layer=layer, lam=cfg.lam, tau=cfg.tau, v=final.v, mu=final.mu,
                   max_length=cfg.max_length, config=cfg.model_dump())
    det_dir = det.save(run.dir / "detector")
    check = te[: min(8, len(te))]
    reloaded = Detector.load(det_dir).score([records[j]["question"] for j in check],
                                            [records[j]["answer"] for j in check], model=model, tokenizer=tok)
    reload_diff = float(np.max(np.abs(np.asarray(reloaded) - scores["tsv"][: len(check)])))
    t0 = lap("detector_check", t0)

    # 7. statistics, claims, report -------------------------------------------------------------
    y_te = y[te]
    test_auroc = {m: auroc(y_te, s) for m, s in scores.items()}
    val_auroc = {m: auroc(y[val], s) for m, s in val_scores.items()}
    cis = {m: auroc_ci(y_te, s, n_boot=cfg.bootstrap, seed=cfg.seed) for m, s in scores.items()}
    test_ci = {m: [e.lo, e.hi] for m, e in cis.items()}
    diffs = {m: auroc_diff(y_te, scores["tsv"], s, n_boot=cfg.bootstrap, seed=cfg.seed)
             for m, s in scores.items() if m != "tsv"}
    diff_ci = {m: [e.lo, e.hi] for m, e in diffs.items()}
    for rec in records:
        run.append("generations", rec)
    for m, s in scores.items():
        for j, v in zip(te, s, strict=True):
            records[j][f"score_{m}"] = float(v)
    (run.dir / "test_scores.jsonl").write_text(
        "".join(json.dumps(records[j], ensure_ascii=False) + "\n" for j in te), encoding="utf-8")

    claims = make_claims(y_te, scores, cfg)
    cpu_s = time.process_time() - cpu_start
    results = {
        "test_auroc": test_auroc, "test_auroc_ci95": test_ci, "tsv_minus_method_ci95": diff_ci,
        "val_auroc": val_auroc,
        "n": {p: len(v) for p, v in pos.items()},
        "truthful_rate": {p: float(y[v].mean()) for p, v in pos.items()},
        "layer": layer, "n_layers": n_layers,
        "class_prior": res.class_prior,
        "stage1": {"epochs": res.log1.epochs, "loss": res.log1.loss, "val_auroc": res.log1.val_auroc,
                   "best_epoch": res.log1.best_epoch},
        "stage2": {"epochs": res.log2.epochs, "loss": res.log2.loss, "val_auroc": res.log2.val_auroc,
                   "best_epoch": res.log2.best_epoch,
                   "selected": len(res.selected),
                   "selected_label_accuracy": _pseudo_acc(res, wi, y),
                   "selected_truthful_fraction": float(np.mean([p[1] for p in res.pseudo_labels]))
                   if res.pseudo_labels else None},
        "probe_C": float(probe.C), "supervised_probe_C": float(sup.C) if sup is not None else None,
        "labelling": {"method": cfg.labeller, "hand_agreement": agree},
        "detector": {"path": str(det_dir), "reload_max_abs_diff": reload_diff, "checked": len(check)},
        "v_norm": float(final.v.norm()),
        "seconds": timings, "cpu_seconds_over_threads": round(cpu_s / cfg.threads, 1),
        "wall_seconds": round(time.time() - t_start, 1),
    }
    plot(run, y_te, scores, test_auroc, test_ci, res)
    run.finish(claims, results=results, sections=report_sections(results, cfg), scale_note=SCALE_NOTE,
               title="TSV: steering LLM latents for hallucination detection", paper=PAPER)
    return run.dir


def load_answers(path: str, rows: list[int]) -> list[str]:
    """Answers from a JSONL file of ``{"row": <TruthfulQA row>, "answer": "..."}`` (e.g. from another LLM)."""
    from paperlab.core.data import read_jsonl

    given = {}
    for i, r in enumerate(read_jsonl(path), 1):
        if not isinstance(r, dict) or not isinstance(r.get("row"), int) or not isinstance(r.get("answer"), str):
            raise UserError(f"{path} record {i} lacks an integer 'row' and a string 'answer'",
                            'write {"row": 0, "answer": "..."} per line')
        given[r["row"]] = r["answer"]
    missing = [r for r in rows if r not in given]
    if missing:
        raise UserError(f"{path} has no answer for {len(missing)} needed rows (e.g. {missing[:5]})",
                        "answer every question of the split or drop --answers")
    return [given[r].strip() for r in rows]


def _pseudo_acc(res, wild_pos, y) -> float | None:
    """How often the selected pseudo-labels' argmax matches the (hidden) wild labels."""
    if not res.selected:
        return None
    true = [int(y[wild_pos[j]]) for j in res.selected]
    pred = [int(np.argmax(p)) for p in res.pseudo_labels]
    return float(np.mean([a == b for a, b in zip(true, pred, strict=True)]))


SCALE_NOTE = """
- **Model**: SmolLM2-135M-Instruct (30 blocks, width 576) instead of LLaMA-3.1-8B / Qwen-2.5-7B. The
  steering layer keeps the paper's relative depth (block 9 of 32 -> block 8 of 30, `--layer`); lambda,
  tau, EMA decay, lr, batch size, Sinkhorn eps/iterations are the paper's. A 135M model answers almost all
  TruthfulQA questions wrongly, so the truthful class is small and AUROCs are noisy.
- **Answers** are greedy (the paper: beam search with 5 beams) through the llama.cpp GGUF of the same model,
  with the paper's prompt as the chat user turn; embeddings come from the dequantised transformers model.
- **Labels**: BLEURT is not available offline. An answer is truthful when it is closer (ROUGE-L F1 by
  default, or MiniLM cosine) to the nearest correct reference than to the nearest incorrect one (TruthfulQA's
  similarity-difference rule). On the hand-labelled sample this proxy agrees poorly with a human reader
  (kappa near 0: the 135M model's answers are nearly all false, and word overlap cannot see a negation), so the
  detection target here is "closer to the correct references", a noisy stand-in for truthfulness.
- **Model selection** uses the 68 held-out non-exemplar questions of the official split (validation); the
  official code selects the best epoch on the test split, which we never do. Stage 2 starts from the
  selected stage-1 detector with a fresh AdamW; batches are shuffled.
- **Quick run** (`--quick`): 64 of the 512 wild questions, the first 100 of the 205 test questions,
  10 + 6 epochs (paper: 20 + 20), k = 32 selected pseudo-labels (paper: 128) and validation every 2nd epoch,
  to fit a 2-core CPU in about ten minutes. Run without `--quick` for the paper's sizes.
"""


def report_sections(r: dict, cfg: TSVConfig) -> list[str]:
    rows = []
    for m in ("perplexity", "raw_prototypes", "probe", "supervised_probe", "tsv_stage1", "tsv"):
        if m not in r["test_auroc"]:
            continue
        lo, hi = r["test_auroc_ci95"][m]
        d = r["tsv_minus_method_ci95"].get(m)
        rows.append([LABELS[m], r["test_auroc"][m], f"[{lo:.3f}, {hi:.3f}]", r["val_auroc"].get(m, float("nan")),
                     "-" if d is None else f"[{d[0]:+.3f}, {d[1]:+.3f}]"])
    n, tr = r["n"], r["truthful_rate"]
    ag = r["labelling"]["hand_agreement"]
    s2 = r["stage2"]
    out = [
        "## Test AUROC (hallucination detection, truthful = positive class)", "",
        markdown_table(["method", "test AUROC", "95% bootstrap CI", "val AUROC", "TSV minus method, paired 95% CI"],
                       rows), "",
        f"Bootstrap: {cfg.bootstrap} resamples of the test questions, stratified by label (class counts kept) "
        "and paired across methods. "
        f"Logistic probe C = {r['probe_C']:g} (picked on validation). Per-answer scores: `test_scores.jsonl`.",
        "",
        "## Data and labels", "",
        markdown_table(["split", "questions", "truthful rate"],
                       [[p, n[p], tr[p]] for p in ("exemplar", "wild", "val", "test")]), "",
        f"Labeller: `{r['labelling']['method']}`. Hand-labelled sample: {ag['matched']} of {ag['sample_size']} "
        f"answers reproduced exactly in this run; agreement with the hand labels: MiniLM-margin "
        f"{ag['embed']['accuracy']:.2f} (kappa {ag['embed']['kappa']:.2f}), ROUGE-L-margin "
        f"{ag['rouge']['accuracy']:.2f} (kappa {ag['rouge']['kappa']:.2f}); the two labellers agree on "
        f"{ag['embed_vs_rouge_all']['accuracy']:.2f} of all {ag['embed_vs_rouge_all']['n']} answers.", "",
        "## TSV training", "",
        f"Steering block {r['layer']} of {r['n_layers']}; class prior from the exemplars "
        f"[hallucinated, truthful] = [{r['class_prior'][0]:.3f}, {r['class_prior'][1]:.3f}]. "
        f"Stage 1 best validation epoch: {r['stage1']['best_epoch']}; stage 2: {s2['best_epoch']}. "
        f"Stage 2 selected {s2['selected']} wild answers; their pseudo-labels match the hidden labels for "
        f"{_pct(s2['selected_label_accuracy'])} of them. Final |v| = {r['v_norm']:.3f}. "
        f"Detector saved to `detector/`; re-loaded and re-scored on {r['detector']['checked']} test answers by "
        f"full (uncached) forward passes: max |difference| = {r['detector']['reload_max_abs_diff']:.2e}.", "",
        "Timings (s): " + ", ".join(f"{k} {v}" for k, v in r["seconds"].items())
        + f"; CPU time / threads {r['cpu_seconds_over_threads']} s (an estimate of the wall time on an idle machine).",
    ]
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def plot(run: Run, y_te, scores: dict, test_auroc: dict, test_ci: dict, res) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    names = [m for m in ("perplexity", "raw_prototypes", "probe", "supervised_probe", "tsv_stage1", "tsv")
             if m in scores]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    vals = [test_auroc[m] for m in names]
    err = np.array([[test_auroc[m] - test_ci[m][0], test_ci[m][1] - test_auroc[m]] for m in names]).T
    colors = ["#1f4e79" if m == "tsv" else "#6fa8dc" if m == "tsv_stage1" else "#aaaaaa" for m in names]
    ax.bar(range(len(names)), vals, yerr=err, color=colors, capsize=4)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), [SHORT[m] for m in names], fontsize=8, rotation=15)
    ax.set_ylabel("test AUROC")
    ax.set_ylim(0.3, 1.0)
    run.savefig(fig, "auroc", "Test AUROC per method with 95% bootstrap CIs (dotted: chance)")

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
