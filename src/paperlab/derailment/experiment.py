"""``paperlab derailment run``: markers, the feature baseline, the SCD pipeline and early warning.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`load_and_split` — the packaged threads (prefix = comments before the first toxic one; threads
   with an empty prefix skipped, as the official script), a seeded held-out split by conversation,
   stratified by kind (derailed / non-derailed toxic / non-toxic).
2. :func:`marker_analysis` — the paper's markers (second person, negation, bitter frustration,
   impatience) in derailed prefixes vs. non-toxic threads, by position before the toxic comment; our
   tone lexicons checked against the annotated tones; outsider turns where ``author_association`` is known.
3. :func:`feature_baseline` — the logistic-regression baseline trained on the training threads, scored on
   every held-out thread (P/R/F1 at 0.5, AUROC, threshold sweep, a length-only control).
4. :func:`llm_pipeline` — summary -> probability with any LLM backend on a seeded subset of the held-out
   threads (both probability readers on the same summaries unless ``other_reader`` is off); the feature
   baseline on the same threads.
5. :func:`early_warnings` — prefix-wise prediction: features on every held-out thread (a classifier
   trained on every prefix; the whole-prefix one as a control), the LLM on a smaller subset with at most
   ``max_prefixes`` prefixes per thread; warned vs. false-alarm shares at the threshold and over a sweep.
6. :func:`make_claims`, then the report and plots (:mod:`paperlab.derailment.report`).

LLM requests go through the core's request cache (``$PAPERLAB_CACHE``): a killed run resumes where it
stopped, and re-running recomputes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.runs import Run, build_config
from paperlab.derailment.data import Split, Thread, load_threads, split_threads, subsample
from paperlab.derailment.evaluation import (
    PrefixScores,
    early_warning,
    early_warning_curve,
    f1_difference,
    max_score_auroc,
    prefix_lengths,
    prf_estimates,
    threshold_sweep,
)
from paperlab.derailment.features import FeatureClassifier

PAPER = ("Understanding and Predicting Derailment in Toxic Conversations on GitHub, arXiv:2503.02191, "
         "https://arxiv.org/abs/2503.02191")
#: The stored per-conversation results of the replication package (LtM prompt, llama3.1:70b, threshold 0.5).
PAPER_LTM = {"precision": 0.761, "recall": 0.654, "f1": 0.703, "n": 822, "n_toxic": 127}
THRESHOLDS = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]


class DerailmentConfig(BaseModel):
    """Configuration of ``paperlab derailment run`` (saved with every run)."""

    seed: int = Field(0, description="seed of the split and of every subsample")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="held-out share of each kind of thread")
    association: Literal["auto", "on", "off"] = Field(
        "auto", description="contributor-vs-outsider features; auto: only if every training thread has them")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    threshold: float = Field(0.5, gt=0, lt=1, description="alarm threshold (stored results: 0.5)")
    model: str = Field("default", description="LLM spec for the SCD pipeline; 'none' skips it")
    prompt: Literal["ltm", "ltm_compact", "hua"] = Field(
        "ltm", description="summary prompt: least-to-most (paper), its compact form, or plain SCD")
    extra_prompts: list[Literal["ltm", "ltm_compact", "hua"]] = Field(default_factory=lambda: ["hua"],
                                                       description="other summary prompts compared on the subset")
    probability: Literal["yes_no", "stated"] = Field("yes_no", description="how p is read (see scd.py)")
    other_reader: bool = Field(True, description="also read p the other way from the same summaries")
    llm_threads: int = Field(100000, ge=2, description="held-out threads given to the LLM (all when larger)")
    llm_pos_fraction: float | None = Field(None, gt=0, lt=1,
                                           description="toxic share of the LLM subset (None: natural)")
    early_warning_llm_threads: int = Field(60, ge=0, description="threads for the LLM's prefix-wise scoring")
    max_prefixes: int = Field(6, ge=1, description="LLM early warning: last prefixes scored per thread")
    summary_tokens: int = Field(200, ge=16)
    max_comment_chars: int = Field(600, ge=50)
    max_chars: int = Field(6000, ge=200)
    n_ctx: int = Field(4096, ge=1024, description="llama.cpp context for gguf/default models")
    n_boot: int = Field(2000, ge=200)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v != "none":
            from paperlab.core.models import parse_spec

            parse_spec(v)
        return v

    @classmethod
    def quick(cls, **overrides) -> DerailmentConfig:
        """Quick tier: the feature baseline on every held-out thread; the 135M LLM with the compact LtM prompt
        on 40 of them (half toxic), prefix-wise on 10 (last 2 prefixes), short transcripts, one reader (16 + 4
        threads took 2 min 13 s alone on 2 cores, ~2 s an LLM call)."""
        return cls(**({"prompt": "ltm_compact", "extra_prompts": [], "llm_threads": 40, "llm_pos_fraction": 0.5,
                       "early_warning_llm_threads": 10, "max_prefixes": 2, "summary_tokens": 48,
                       "max_comment_chars": 160, "max_chars": 800, "other_reader": False, "n_boot": 1000}
                      | overrides))


def default_config(quick: bool = False, **overrides) -> DerailmentConfig:
    return build_config(DerailmentConfig, "derailment", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- steps


def load_and_split(cfg: DerailmentConfig) -> Split:
    threads = load_threads()
    split = split_threads(threads, cfg.test_fraction, cfg.seed)
    split.notes = {kind: {"train": sum(t.source == kind for t in split.train),
                          "test": sum(t.source == kind for t in split.test)}
                   for kind in ("derailed", "non_derailed", "non_toxic")}
    return split


def marker_analysis(threads: list[Thread]) -> dict:
    """Marker rates (per 100 tokens, one value per thread) in derailed prefixes vs. non-toxic threads; by
    position before the toxic comment; the lexicons against the annotated tones; outsider turns."""
    from paperlab.derailment.features import KEY_MARKERS, comment_markers

    def rates(comments) -> dict[str, float]:
        ms = [comment_markers(c.text) for c in comments]
        n = sum(m.n_tokens for m in ms)
        return {k: 100.0 * sum(getattr(m, k) for m in ms) / n if n else np.nan for k in KEY_MARKERS}

    derailed = [rates(t.prefix) for t in threads if t.source == "derailed"]
    clean = [rates(t.prefix) for t in threads if t.source == "non_toxic"]
    per_thread = {k: {"derailed": [r[k] for r in derailed], "non_toxic": [r[k] for r in clean]} for k in KEY_MARKERS}
    # by position: the comment 1, 2, ... before the first toxic one (derailed threads)
    by_pos: dict[str, dict[int, list[float]]] = {k: {} for k in KEY_MARKERS}
    for t in threads:
        if t.source != "derailed":
            continue
        for back, c in enumerate(reversed(t.prefix), 1):
            if back > 6:
                break
            r = rates([c])
            for k in KEY_MARKERS:
                if np.isfinite(r[k]):
                    by_pos[k].setdefault(back, []).append(r[k])
    by_position = {k: {b: float(np.mean(v)) for b, v in sorted(d.items())} for k, d in by_pos.items()}
    baseline = {k: float(np.nanmean(per_thread[k]["non_toxic"])) for k in KEY_MARKERS}
    return {"per_thread": per_thread, "by_position": by_position, "non_toxic_mean": baseline,
            "lexicon_check": lexicon_check(threads), "association": association_analysis(threads)}


def lexicon_check(threads: list[Thread]) -> dict:
    """Our tone lexicons vs. the annotated ``tbdf`` tones, on every comment of the annotated (toxic) files."""
    from paperlab.core.stats import auroc_ci
    from paperlab.derailment.evaluation import prf
    from paperlab.derailment.features import comment_markers

    comments = [c for t in threads if t.source in ("derailed", "non_derailed") for c in t.comments]
    out = {}
    for marker, tone in (("frustration", "Bitter frustration"), ("impatience", "Impatience")):
        y = np.array([c.tone == tone for c in comments], dtype=int)
        hits = np.array([getattr(comment_markers(c.text), marker) for c in comments], dtype=float)
        p, r, f = prf(y, hits > 0)
        out[tone] = {"comments": len(comments), "annotated": int(y.sum()), "precision": p, "recall": r, "f1": f,
                     "base_rate": float(y.mean()), "auroc": auroc_ci(y, hits).as_dict()}
    return out


def association_analysis(threads: list[Thread]) -> dict:
    """Where ``author_association`` is known (non-derailed toxic and non-toxic files): the outsiders' share
    of prefix turns, and of toxic comments."""
    from paperlab.derailment.data import INSIDER

    def outsider_share(comments) -> float:
        return float(np.mean([c.association not in INSIDER for c in comments])) if comments else float("nan")

    known = [t for t in threads if all(c.association is not None for c in t.comments)]
    toxic = [t for t in known if t.label]
    clean = [t for t in known if not t.label]
    toxic_comments = [t.comments[t.first_toxic] for t in toxic]
    return {"threads_with_association": len(known), "toxic": len(toxic), "non_toxic": len(clean),
            "outsider_share_prefix_toxic": float(np.nanmean([outsider_share(t.prefix) for t in toxic])),
            "outsider_share_non_toxic": float(np.nanmean([outsider_share(t.comments) for t in clean])),
            "outsider_share_of_toxic_comments": outsider_share(toxic_comments),
            "outsider_share_of_all_comments": outsider_share([c for t in known for c in t.comments])}


def feature_baseline(split: Split, cfg: DerailmentConfig) -> tuple[FeatureClassifier, dict]:
    assoc = {"auto": "auto", "on": True, "off": False}[cfg.association]
    clf = FeatureClassifier(association=assoc, C=cfg.C, seed=cfg.seed).fit(split.train)
    y = np.array([t.label for t in split.test])
    prob = clf.predict_proba([t.prefix for t in split.test])
    length_only = _length_control(split)
    return clf, {"ids": [t.id for t in split.test], "y": y.tolist(), "prob": prob.tolist(),
                 "estimates": {k: e.as_dict() for k, e in prf_estimates(y, prob, cfg.threshold, cfg.n_boot,
                                                                        cfg.seed).items()},
                 "sweep": threshold_sweep(y, prob, THRESHOLDS), "association_features": clf.association,
                 "coefficients": clf.coefficients(), "length_only": length_only}


def _length_control(split: Split) -> dict:
    """How much the number of comments alone tells (the toxic prefixes stop before the toxic comment,
    the non-toxic threads run to their end): AUROC of the prefix length on the held-out threads."""
    from paperlab.core.stats import auroc_ci

    y = [t.label for t in split.test]
    n = [-len(t.prefix) for t in split.test]  # shorter prefix -> more likely toxic
    return {"auroc_shorter_is_toxic": auroc_ci(y, n).as_dict(),
            "mean_prefix_toxic": float(np.mean([len(t.prefix) for t in split.test if t.label])),
            "mean_prefix_non_toxic": float(np.mean([len(t.prefix) for t in split.test if not t.label]))}


def _predictor(cfg: DerailmentConfig, prompt: str | None = None):
    from paperlab.core.models import load_lm, parse_spec
    from paperlab.derailment.scd import SCDPredictor

    kw = {"n_ctx": cfg.n_ctx} if parse_spec(cfg.model).kind == "gguf" else {}
    return SCDPredictor(load_lm(cfg.model, **kw), prompt=prompt or cfg.prompt, probability=cfg.probability,
                        summary_tokens=cfg.summary_tokens, max_comment_chars=cfg.max_comment_chars,
                        max_chars=cfg.max_chars, seed=cfg.seed)


def llm_subset(split: Split, cfg: DerailmentConfig) -> list[Thread]:
    return subsample(split.test, cfg.llm_threads, cfg.llm_pos_fraction, cfg.seed)


def llm_pipeline(split: Split, clf: FeatureClassifier, cfg: DerailmentConfig, run: Run) -> dict:
    """The SCD pipeline on the LLM subset, both probability readers, the feature baseline on the same threads."""
    from rich.progress import track

    threads = llm_subset(split, cfg)
    y = np.array([t.label for t in threads])
    feat = clf.predict_proba([t.prefix for t in threads])
    out: dict = {"ids": [t.id for t in threads], "y": y.tolist(), "features_prob": feat.tolist(), "prompts": {}}
    for prompt in [cfg.prompt, *[p for p in cfg.extra_prompts if p != cfg.prompt]]:
        pred = _predictor(cfg, prompt)
        summaries = []
        for t in track(threads, description=f"SCD summaries ({prompt})"):
            summaries += pred.summarise([t.prefix])
        res = {}
        readers = [cfg.probability] + ([r for r in ("yes_no", "stated") if r != cfg.probability]
                                       if cfg.other_reader else [])
        for how in readers:  # every reader on the same summaries (step 2 is cheap)
            preds = pred.predict_from_summaries(summaries, how)
            prob = np.array([p.probability for p in preds])
            res[how] = {"prob": prob.tolist(), "readable": sum(p.readable for p in preds),
                        "estimates": {k: e.as_dict() for k, e in prf_estimates(y, prob, cfg.threshold, cfg.n_boot,
                                                                               cfg.seed).items()},
                        "sweep": threshold_sweep(y, prob, THRESHOLDS),
                        "distinct_probabilities": len({round(p, 4) for p in prob})}
            _write_jsonl(run.path(f"llm_{prompt}_{how}.jsonl"), [
                {"id": t.id, "label": t.label, "n_prefix": len(t.prefix), "probability": p.probability,
                 "readable": p.readable, "answer": p.answer, "summary": p.summary, "summary_finish": p.summary_finish}
                for t, p in zip(threads, preds, strict=True)])
        res["truncated_summaries"] = sum(s.finish_reason == "length" for s in summaries)
        out["prompts"][prompt] = res
    main = out["prompts"][cfg.prompt][cfg.probability]
    out["f1_difference"] = f1_difference(y, main["prob"], feat, cfg.threshold, cfg.threshold, cfg.n_boot,
                                         cfg.seed).as_dict()
    out["features_estimates"] = {k: e.as_dict() for k, e in prf_estimates(y, feat, cfg.threshold, cfg.n_boot,
                                                                          cfg.seed).items()}
    return out


def _prefix_scores(threads: list[Thread], score, max_prefixes: int | None = None) -> list[PrefixScores]:
    out = []
    for t in threads:
        lengths = prefix_lengths(len(t.prefix), max_prefixes)
        probs = score([t.prefix[:k] for k in lengths])
        out.append(PrefixScores(t.id, t.label, len(t.prefix), lengths, [float(p) for p in probs]))
    return out


def _warning_summary(recs: list[PrefixScores], cfg: DerailmentConfig, records: bool = True) -> dict:
    return ({"records": [vars(r) for r in recs]} if records else {}) | early_warning(recs, cfg.threshold) | {
        "curve": early_warning_curve(recs, THRESHOLDS),
        "max_prob_auroc": max_score_auroc(recs, cfg.n_boot, cfg.seed).as_dict()}


def early_warnings(split: Split, clf: FeatureClassifier, cfg: DerailmentConfig) -> dict:
    """Prefix-wise scores: the feature baseline on every held-out thread (all prefixes; a classifier trained on
    every prefix, and the whole-prefix one as a control), the LLM on a subset (the last ``max_prefixes``)."""
    from rich.progress import track

    every = FeatureClassifier(association=clf.association_setting, C=cfg.C, train_prefixes="all",
                              seed=cfg.seed).fit(split.train)
    feats = _prefix_scores(split.test, every.predict_proba)
    out = {"features": _warning_summary(feats, cfg),
           "features_whole_prefix_model": _warning_summary(_prefix_scores(split.test, clf.predict_proba), cfg,
                                                           records=False)}
    if cfg.model != "none" and cfg.early_warning_llm_threads:
        # drawn from the LLM subset: the full prefix's summary is already cached from the pipeline step
        threads = subsample(llm_subset(split, cfg), cfg.early_warning_llm_threads, 0.5, cfg.seed + 1)
        pred = _predictor(cfg)
        recs = []
        for t in track(threads, description="LLM early warning"):
            recs += _prefix_scores([t], lambda ps: [p.probability for p in pred.predict(ps)], cfg.max_prefixes)
        out["llm"] = {"max_prefixes": cfg.max_prefixes, **_warning_summary(recs, cfg)}
        # the feature baseline on the same threads and the same prefixes, for a like-for-like comparison
        ids = {t.id for t in threads}
        same = [PrefixScores(r.id, r.label, r.n_prefix, r.lengths[-cfg.max_prefixes:], r.probs[-cfg.max_prefixes:])
                for r in feats if r.id in ids]
        out["features_on_llm_threads"] = _warning_summary(same, cfg, records=False)
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Raw outputs of one step, written whole (a resumed run rewrites them from the request cache)."""
    import json

    from paperlab.core.runs import to_jsonable

    path.write_text("".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- driver


def run_experiment(cfg: DerailmentConfig, out: Path | None = None) -> Path:
    from paperlab.derailment.report import make_claims, write_report

    run = Run("derailment", out=out, config=cfg)
    split = load_and_split(cfg)
    results: dict = {"split": split.notes, "markers": marker_analysis(split.train + split.test)}
    clf, results["features"] = feature_baseline(split, cfg)
    if cfg.model != "none":
        results["llm"] = llm_pipeline(split, clf, cfg, run)
    results["early_warning"] = early_warnings(split, clf, cfg)
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, PAPER)
    return run.dir
