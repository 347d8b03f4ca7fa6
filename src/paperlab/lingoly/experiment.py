"""``paperlab lingoly run``: templatised obfuscation of the released problems, M_og vs. M_obf.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`check_templates` — validate the six derived templates against their problems' Problemese.
2. :func:`reproduce_released` — apply each released mapping with our scanner to the original and
   compare with the released obfuscated text (every field, every word), once with the template's
   Problemese words and once *held out* (words taken from the other released obfuscation only).
3. :func:`generate` — fresh obfuscations as the paper: ``random.seed(317)`` once, ``n_obfuscations``
   per problem in sorted order, drawn without replacement (fewer where fewer exist: problem 191
   has two). Saved under ``obfuscations/``.
4. :func:`roundtrip` — every fresh obfuscation made with ``@@@`` marks kept and undone with the
   inverse mapping: the share of Problemese word occurrences restored exactly and the share changed.
5. :func:`solve` — the memorising and the rule-inducing solver on originals, fresh and released
   obfuscations; exact match (and BLEU/chrF) per sub-question.
6. :func:`human_scores` — the 172 participants' answers scored with our scorer.
7. :func:`llm_scores` — any LLM backend (``models``), one prompt per question, in a child process so
   a crash of a native backend cannot take the run down; replies cached.
8. :func:`make_claims`, then the report and plots (:mod:`paperlab.lingoly.report`).

M_og is the mean exact match over sub-questions of the originals; M_obf the mean over the same
sub-questions of their mean over the obfuscations. Intervals: percentile bootstrap over problems
(sub-questions clustered by problem) for solvers and LLMs; over participants (two independent arms)
for humans.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.runs import Run, build_config
from paperlab.lingoly.obfuscation import (
    OBF_MARK,
    Template,
    apply_mapping,
    invert,
    mark_problemese,
    normalise,
    validate_template,
    word_extra,
    words,
)
from paperlab.lingoly.problems import (
    NUM_OBF,
    SEED,
    generate_obfuscations,
    iter_fields,
    obfuscate_problem,
    subquestions,
)
from paperlab.lingoly.released import Released, load_released, load_templates, responses_path
from paperlab.lingoly.scoring import score
from paperlab.lingoly.templates import problemese_words

PAPER = ("LINGOLY-TOO: Disentangling Reasoning from Knowledge with Templatised Orthographic Obfuscation, "
         "arXiv:2503.02972, https://arxiv.org/abs/2503.02972")


class LingolyConfig(BaseModel):
    """Configuration of ``paperlab lingoly run`` (saved with every run)."""

    n_obfuscations: int = Field(NUM_OBF, ge=1, le=50, description="fresh obfuscations per problem (paper: 6)")
    seed: int = Field(SEED, description="random.seed set once before the problems (paper: 317)")
    models: list[str] = Field(default_factory=lambda: ["default"], description="LLM specs evaluated")
    llm_obfuscations: int = Field(NUM_OBF, ge=0, description="fresh obfuscations per problem given to the LLMs")
    llm_released: bool = Field(True, description="also give the LLMs the two released obfuscations")
    max_tokens: int = Field(256, ge=16, description="LLM reply budget per question")
    max_context_chars: int | None = Field(None, ge=200, description="truncate a sheet's context (None: whole)")
    n_ctx: int = Field(4096, ge=512, description="llama.cpp context window for gguf/default models")
    equivalence_margin: float = Field(0.05, gt=0, lt=1, description="rule inducer: |M_og - M_obf| bound")
    roundtrip_null: float = Field(0.99, gt=0, lt=1, description="word shares that must exceed this")
    human: bool = True
    n_boot: int = Field(2000, ge=200)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        from paperlab.core.models import parse_spec

        if len(set(v)) != len(v):
            raise ValueError("models must be distinct")
        for m in v:
            parse_spec(m)
        return v

    @classmethod
    def quick(cls, **overrides) -> LingolyConfig:
        """Quick tier: the same obfuscations and solvers (seconds); the LLM on originals + 1 obfuscation."""
        return cls(**({"llm_obfuscations": 1, "llm_released": False, "max_tokens": 160, "n_boot": 1000} | overrides))


def default_config(quick: bool = False, **overrides) -> LingolyConfig:
    return build_config(LingolyConfig, "lingoly", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- steps


def check_templates(released: dict[str, Released], templates: dict[str, Template]) -> dict[str, list[dict]]:
    """Validator issues of each template against its problem's Problemese."""
    return {pid: [vars(i) for i in validate_template(templates[pid], templates[pid].problemese)] for pid in released}


def _compare(mine: dict, theirs: dict, tpl: Template) -> tuple[int, int, int, int]:
    """(fields equal, fields, words equal, words) after NFD."""
    extra = word_extra(tpl)
    a, b = dict(iter_fields(mine)), dict(iter_fields(theirs))
    f_ok = w_ok = w_n = 0
    for k in a:
        x, y = normalise(a[k]), normalise(b[k])
        f_ok += x == y
        wx, wy = [x[s:e] for s, e in words(x, extra)], [y[s:e] for s, e in words(y, extra)]
        w_n += max(len(wx), len(wy))
        w_ok += sum(p == q for p, q in zip(wx, wy, strict=False))
    return f_ok, len(a), w_ok, w_n


def reproduce_released(released: dict[str, Released], templates: dict[str, Template]) -> list[dict]:
    """Our scanner with each released mapping vs. the released obfuscated text."""
    rows = []
    for pid, r in released.items():
        tpl = templates[pid]
        for o in r.obfuscations:
            others = [x for x in r.obfuscations if x is not o]
            held = Template(pid, sets=tpl.sets, fixed=tpl.fixed, metadata=tpl.metadata,
                            problemese=problemese_words(r.original, others, word_extra(tpl)))
            for mode, t in (("template", tpl), ("held-out", held)):
                mine = obfuscate_problem(r.original, o["mapping"], t, int(o["obf_num"]))
                f_ok, f_n, w_ok, w_n = _compare(mine, o, t)
                rows.append({"problem": pid, "obf_num": int(o["obf_num"]), "regions": mode, "fields_equal": f_ok,
                             "fields": f_n, "words_equal": w_ok, "words": w_n})
    return rows


def generate(released: dict[str, Released], templates: dict[str, Template], cfg: LingolyConfig,
             run: Run | None = None) -> dict[str, list[dict]]:
    versions = generate_obfuscations({p: r.original for p, r in released.items()}, templates,
                                     cfg.n_obfuscations, cfg.seed)
    if run is not None:
        folder = run.path("obfuscations")
        folder.mkdir(exist_ok=True)
        for pid, vs in versions.items():
            for k, v in enumerate(vs):
                (folder / f"{pid}_{k:04}.json").write_text(json.dumps(v, ensure_ascii=False, indent=1), encoding="utf-8")
    return versions


def roundtrip(released: dict[str, Released], templates: dict[str, Template], versions: dict[str, list[dict]],
              cfg: LingolyConfig) -> dict:
    """Every fresh obfuscation redone with ``@@@`` marks kept: each obfuscated Problemese span, mapped
    back with the inverse mapping, must equal the original span (restored) and differ from it before
    (changed). Plus checks on the mappings themselves and on seeding."""
    restored = changed = total = case_only = 0
    per_problem = {}
    for pid, vs in versions.items():
        tpl = templates[pid]
        orig_spans = [sp for _, t in iter_fields(released[pid].original)
                      for sp in mark_problemese(normalise(t), tpl).split(OBF_MARK)[1::2]]
        p_rest = p_tot = 0
        for v in vs[1:]:
            marked = obfuscate_problem(released[pid].original, v["mapping"], tpl, 0, keep_marks=True)
            obf_spans = [sp for _, t in iter_fields(marked) for sp in normalise(t).split(OBF_MARK)[1::2]]
            inv = invert(v["mapping"])
            for o, x in zip(orig_spans, obf_spans, strict=True):
                back = apply_mapping(x, inv)
                total += 1
                p_tot += 1
                changed += x != o
                restored += back == o
                p_rest += back == o
                case_only += back != o and back.lower() == o.lower()
        per_problem[pid] = {"restored": p_rest, "spans": p_tot}
    maps = [v["mapping"] for vs in versions.values() for v in vs[1:]]
    again = generate_obfuscations({p: r.original for p, r in released.items()}, templates, cfg.n_obfuscations,
                                  cfg.seed)
    return {"spans": total, "restored": restored, "changed": changed, "case_only_failures": case_only,
            "per_problem": per_problem, "mappings": len(maps),
            "bijective_mappings": sum(set(m) == set(m.values()) and len(set(m.values())) == len(m) for m in maps),
            "identity_mappings": sum(all(k == x for k, x in m.items()) for m in maps),
            "same_seed_same_output": again == versions}


def solve(solver, versions: dict[str, list[dict]], released: dict[str, Released]) -> list[dict]:
    rows = []
    sets = {pid: [("original", 0, vs[0])] + [("fresh", k, v) for k, v in enumerate(vs[1:], 1)] +
            [("released", int(o["obf_num"]), o) for o in released[pid].obfuscations] for pid, vs in versions.items()}
    for pid, items in sets.items():
        for kind, k, prob in items:
            answers = solver.answer(prob, pid)
            rows += score_rows(solver.name, kind, k, pid, prob, answers)
    return rows


def score_rows(system: str, kind: str, version: int, pid: str, prob: dict, answers: dict[str, str],
               metrics: tuple[str, ...] = ("exact", "bleu", "chrf")) -> list[dict]:
    out = []
    for sq in subquestions(prob, pid, version):
        pred = answers.get(sq.key, "")
        out.append({"system": system, "kind": kind, "version": version, "problem": pid, "key": sq.key,
                    "prediction": pred, "reference": sq.answer} | {m: score(pred, sq.answer, m) for m in metrics})
    return out


def human_scores() -> list[dict]:
    """Each participant's mean exact match (0-100) on their problem version, with our scorer."""
    import csv

    released = load_released()
    refs = {}
    for pid, r in released.items():
        for prob in [r.original, *r.obfuscations]:
            refs[f"{pid}_{int(prob['obf_num']):04}"] = [sq.answer for sq in subquestions(prob, pid, 0)]
    rows = []
    with open(responses_path(), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = (row.get("problem_code") or "").strip()
            if code not in refs:
                continue
            answers = [row.get(f"{code}_{i + 1}") or "" for i in range(len(refs[code]))]
            ex = [score(a, ref) for a, ref in zip(answers, refs[code], strict=False)]
            rows.append({"participant": row[""], "problem": code.split("_")[0], "code": code,
                         "obfuscated": row["obfuscate"] == "True", "language": row["language_name"],
                         "score": 100 * float(np.mean(ex)), "released_score": float(row["score"])})
    return rows


def llm_scores(cfg: LingolyConfig, versions: dict[str, list[dict]], released: dict[str, Released],
               run: Run) -> dict[str, dict]:
    """Each model on originals, the first ``llm_obfuscations`` fresh obfuscations and (``llm_released``) the
    released obfuscations, in a child process."""
    import multiprocessing as mp

    out = {}
    for spec in cfg.models:
        name = spec.replace("/", "_").replace(":", "_").replace("#", "_")
        path = run.path(f"llm_{name}.jsonl")
        jobs = [(pid, "original" if k == 0 else "fresh", k, vs[k]) for pid, vs in versions.items()
                for k in range(min(len(vs), cfg.llm_obfuscations + 1))]
        if cfg.llm_released:
            jobs += [(pid, "released", int(o["obf_num"]), o) for pid, r in released.items() for o in r.obfuscations]
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_llm_worker, args=(spec, jobs, str(path), cfg.max_tokens, cfg.max_context_chars,
                                                     cfg.n_ctx))
        err = path.with_suffix(".error")
        err.unlink(missing_ok=True)
        proc.start()
        proc.join()
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
        error = err.read_text(encoding="utf-8") if err.exists() else (
            f"the worker process died (exit code {proc.exitcode}: a crash of the native backend)"
            if proc.exitcode else "")
        out[spec] = {"rows": rows, "exitcode": proc.exitcode, "jobs": len(jobs), "error": error}
    return out


def _llm_worker(spec: str, jobs: list, path: str, max_tokens: int, max_context_chars: int | None, n_ctx: int) -> None:
    """Child process: run :func:`_llm_jobs`; an exception is written to ``<path>.error`` in one line."""
    try:
        _llm_jobs(spec, jobs, path, max_tokens, max_context_chars, n_ctx)
    except Exception as e:  # reported in the parent's report, not a traceback
        Path(path).with_suffix(".error").write_text(f"{e.__class__.__name__}: {e}".splitlines()[0], encoding="utf-8")
        raise SystemExit(1) from None


def _llm_jobs(spec: str, jobs: list, path: str, max_tokens: int, max_context_chars: int | None, n_ctx: int) -> None:
    """Ask every (problem, version) not yet in ``path``; append its scored rows."""
    from rich.progress import track

    from paperlab.core.models import GenerationParams, load_lm, parse_spec
    from paperlab.lingoly.harness import answers_by_subquestion, ask

    done = set()
    p = Path(path)
    if p.exists():
        done = {(r["problem"], r["kind"], r["version"])
                for r in map(json.loads, p.read_text(encoding="utf-8").splitlines())}
    todo = [j for j in jobs if j[:3] not in done]
    if not todo:
        return
    kw = {"n_ctx": n_ctx} if parse_spec(spec).kind == "gguf" or spec == "default" else {}
    lm = load_lm(spec, **kw)
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    for pid, kind, k, prob in track(todo, description=f"LLM {spec}"):
        replies = ask(lm, prob, params, max_context_chars)
        answers = answers_by_subquestion(prob, pid, replies)
        rows = score_rows(spec, kind, k, pid, prob, answers)
        for r, (_q, text) in zip(rows, [(q, t) for q, t in replies for _ in q.ids], strict=False):
            r["reply"] = text
        with open(p, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------- driver


def run_experiment(cfg: LingolyConfig, out: Path | None = None) -> Path:
    from paperlab.lingoly.report import make_claims, write_report
    from paperlab.lingoly.solvers import MemorisingSolver, RuleInducingSolver

    run = Run("lingoly", out=out, config=cfg)
    released, templates = load_released(), load_templates()
    results: dict = {"template_issues": check_templates(released, templates),
                     "released_reproduction": reproduce_released(released, templates)}
    versions = generate(released, templates, cfg, run)
    results["n_versions"] = {pid: len(vs) - 1 for pid, vs in versions.items()}
    results["roundtrip"] = roundtrip(released, templates, versions, cfg)
    solvers = [MemorisingSolver({p: r.original for p, r in released.items()}), RuleInducingSolver()]
    results["solver_rows"] = [row for s in solvers for row in solve(s, versions, released)]
    results["human_rows"] = human_scores() if cfg.human else []
    results["llm"] = llm_scores(cfg, versions, released, run) if cfg.models else {}
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, PAPER)
    return run.dir
