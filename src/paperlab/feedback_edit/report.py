"""Claims, the plot and the report of ``paperlab feedback_edit run``.

Claims (both decided on paired bootstrap intervals over prompts, from this run's rewards):

- ``feedback_edit_scales``: the selected answer's exact reward at the grid's largest (N, M, K) minus
  at its smallest; the paper: > 0.
- ``beats_best_of_n_equal_calls``: Feedback-Edit at the largest setting minus best-of-N' with
  ``N' = C(N, M, K)`` generation calls (the same number); the paper: > 0. Reported either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paperlab.core.runs import Claim, Run, claim, markdown_table
from paperlab.core.stats import auroc_ci, mean_ci, paired_bootstrap_diff, spearman_ci
from paperlab.feedback_edit import pipeline as fe


def _label(s: tuple[int, int, int]) -> str:
    return f"N={s[0]} M={s[1]} K={s[2]}"


def make_claims(cfg: Any, ev: dict) -> list[Claim]:
    big, small = cfg.largest(), cfg.smallest()
    fe_big = ev["feedback_edit"][big]
    fe_small = ev["feedback_edit"][small]
    bon = ev["best_of_n"][fe_big["calls"]]
    scales = claim(
        "feedback_edit_scales",
        f"Selected-answer reward rises with the Feedback-Edit budget: {_label(big)} "
        f"({fe_big['calls']} generation calls) minus {_label(small)} ({fe_small['calls']}), paired over prompts",
        paired_bootstrap_diff(fe_big["reward"], fe_small["reward"]), expect="greater",
        reward_largest=float(np.mean(fe_big["reward"])), reward_smallest=float(np.mean(fe_small["reward"])),
        reward="exact correctness of the selected answer's final number")
    beats = claim(
        "beats_best_of_n_equal_calls",
        f"Feedback-Edit ({_label(big)}) beats best-of-N with N'={fe_big['calls']} samples, the same number "
        "of generation calls (same generator and selector), paired over prompts",
        paired_bootstrap_diff(fe_big["reward"], bon["reward"]), expect="greater",
        reward_feedback_edit=float(np.mean(fe_big["reward"])), reward_best_of_n=float(np.mean(bon["reward"])),
        selector_calls_feedback_edit=fe_big["compute"]["selector"]["calls"],
        selector_calls_best_of_n=bon["compute"]["selector"]["calls"])
    return [scales, beats]


def plot(run: Run, cfg: Any, ev: dict) -> None:
    """One plot: mean selected reward (95% CI) vs generation calls, every (N, M, K) and best-of-N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    bx = sorted(ev["best_of_n"])
    b = [mean_ci(ev["best_of_n"][c]["reward"], bounds=(0, 1)) for c in bx]
    ax.errorbar(bx, [e.value for e in b], yerr=_yerr(b), color="black", marker="s", capsize=3,
                label="best-of-N' (N' = calls)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ci, (m, k) in enumerate((m, k) for m in cfg.m_grid for k in cfg.k_grid):
        pts = [(ev["feedback_edit"][(n, m, k)]["calls"], mean_ci(ev["feedback_edit"][(n, m, k)]["reward"],
                                                              bounds=(0, 1)), n) for n in cfg.n_grid]
        xs, es = [p[0] for p in pts], [p[1] for p in pts]
        ax.errorbar(xs, [e.value for e in es], yerr=_yerr(es), marker="o", capsize=3, color=colors[ci % len(colors)],
                    label=f"Feedback-Edit M={m} K={k} (N = {', '.join(map(str, cfg.n_grid))})")
        for x, e, n in pts:
            ax.annotate(f"N{n}", (x, e.value), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xticks(bx, [str(c) for c in bx])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)  # the reward is a rate in [0, 1]
    ax.set_xlabel("generation calls per prompt  (Feedback-Edit: N + NM + NMK)")
    ax.set_ylabel("selected-answer reward (exact correctness)")
    ax.set_title(f"{cfg.task}: {len(next(iter(ev['best_of_n'].values()))['reward'])} problems")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    run.savefig(fig, "rewards_vs_calls", "Selected-answer reward (mean, 95% t-interval over problems) vs "
                "generation calls: every (N, M, K) setting and best-of-N at the same calls.")


def _yerr(es) -> np.ndarray:
    v = np.array([e.value for e in es])
    lo = np.array([e.lo if np.isfinite(e.lo) else e.value for e in es])
    hi = np.array([e.hi if np.isfinite(e.hi) else e.value for e in es])
    return np.vstack([v - lo, hi - v])


def _tables(cfg: Any, ev: dict) -> str:
    rows = []
    for s in cfg.settings():
        d = ev["feedback_edit"][s]
        c = d["compute"]
        bon = ev["best_of_n"][d["calls"]]
        rows.append([_label(s), d["calls"], c["selector"]["calls"], str(mean_ci(d["reward"], bounds=(0, 1))),
                     float(np.mean(d["oracle"])), float(np.mean(d["vote"])), float(np.mean(bon["reward"])),
                     float(np.mean(bon["vote"])),
                     round(sum(c[r]["prompt_tokens"] for r in fe.GEN_ROLES)),
                     round(sum(c[r]["completion_tokens"] for r in fe.GEN_ROLES))])
    t1 = markdown_table(["setting", "gen. calls", "selector calls", "selected reward [95% CI]",
                         "oracle (any edit correct)", "by vote", "best-of-N' at equal calls",
                         "best-of-N' by vote", "prompt tokens",
                         "completion tokens"], rows)
    brow = [[c, str(mean_ci(d["reward"], bounds=(0, 1))), float(np.mean(d["oracle"])), float(np.mean(d["vote"])),
             round(d["compute"]["generator"]["completion_tokens"])] for c, d in sorted(ev["best_of_n"].items())]
    t2 = markdown_table(["N' (calls)", "selected reward [95% CI]", "oracle (any sample correct)", "by vote",
                         "completion tokens"], brow)
    big = cfg.largest()
    comp = ev["feedback_edit"][big]["compute"]
    rrows = [[r, comp[r]["calls"], round(comp[r]["prompt_tokens"]), round(comp[r]["completion_tokens"])]
             for r in fe.ROLES]
    t3 = markdown_table(["role", "calls", "prompt tokens", "completion tokens"], rrows)
    return ("## Results per setting\n\nMeans per problem. *Oracle*: the share of problems where some candidate "
            "the selector chose from is correct (the selector's headroom). *By vote*: the reward when the same "
            "candidates are selected by self-consistency (most common final answer; a model-free selector, not "
            "the paper's, reported beside the claims).\n\n" + t1 +
            "\n\n## Best-of-N'\n\n" + t2 + f"\n\n## Compute per role at {_label(big)} (per problem)\n\n" + t3)


def _diagnostics(ev: dict) -> str:
    d = ev["diagnostics"]
    init, edit = mean_ci(d["initial_reward"], bounds=(0, 1)), mean_ci(d["edit_reward"], bounds=(0, 1))
    lines = ["## Diagnostics", "",
             f"- Reward of initial responses {init}; of edits {edit}: whether an edit helps on average.",
             f"- Share of generations cut at max_tokens: {d['truncated_share']:.2f}."]
    y = np.asarray(d["judge_labels"])
    if 0 < y.sum() < y.size:
        lines.append(f"- Selector AUROC (judge reward vs exact correctness over every candidate): "
                     f"{auroc_ci(y, d['judge_scores'])} — 0.5 is a selector no better than chance.")
    else:
        lines.append("- Selector AUROC undefined: every candidate has the same correctness.")
    if len(set(d["criticism_counts"])) > 1 and len(set(d["edit_gains"])) > 1:
        lines.append(f"- Feedback ranking: Spearman(criticism-keyword count, mean edit gain over the unedited "
                     f"response) = {spearman_ci(d['criticism_counts'], d['edit_gains'])}.")
    return "\n".join(lines)


SCALE_NOTE = """\
- **Models.** The paper uses dedicated 70B Feedback and Edit models (trained on HelpSteer3) and a 70B
  scaled-Bradley-Terry Select model. Here one small instruct model (default: SmolLM2-135M-Instruct) is
  prompted in every role (`--generator/--feedback/--editor/--selector` take any model spec).
- **Reward.** The paper reports Arena Hard (GPT-4 judged). Offline, the claims use problems with a numeric
  answer, so the *reported* reward is exact correctness; the *selector* is the LM judge
  `log P(Yes) - log P(No)`, which never sees the reference.
- **Budget.** Small N, M, K and short answers (`max_tokens`); the samples of a smaller setting are the first
  ones of the largest (nested sampling), so the grid costs one pipeline run; best-of-N' shares its first N
  samples with Feedback-Edit's initial responses.
- **Equal calls** counts generation calls (generator + feedback + editor); best-of-N' then also makes more
  selector calls (N' vs N·M·K), an advantage to the baseline, and both are listed.
- **Unverified details** (fact sheet: seed digest): T 0.7 / top_p 0.9 for every role, the keyword ranking of
  feedbacks (all M feedbacks are edited unless `keep` is set, so the ranking is measured, not used).
"""


def write_report(run: Run, cfg: Any, ev: dict, role_ids: dict[str, str], paper: str | None = None) -> None:
    claims = make_claims(cfg, ev)
    plot(run, cfg, ev)
    results = {
        "roles": role_ids,
        "feedback_edit": {_label(s): {"calls": d["calls"], "mean_reward": float(np.mean(d["reward"])),
                                      "reward": d["reward"], "oracle": float(np.mean(d["oracle"])),
                                      "vote": float(np.mean(d["vote"])),
                                      "compute": d["compute"]} for s, d in ev["feedback_edit"].items()},
        "best_of_n": {str(c): {"mean_reward": float(np.mean(d["reward"])), "reward": d["reward"],
                               "oracle": float(np.mean(d["oracle"])), "vote": float(np.mean(d["vote"])),
                               "compute": d["compute"]}
                      for c, d in ev["best_of_n"].items()},
        "diagnostics": {k: v for k, v in ev["diagnostics"].items()
                        if k in ("truncated_share",)} | {
            "initial_reward": float(np.mean(ev["diagnostics"]["initial_reward"])),
            "edit_reward": float(np.mean(ev["diagnostics"]["edit_reward"]))},
    }
    setup = (f"## Setup\n\nTask `{cfg.task}`, {cfg.problems} problems; grid N∈{cfg.n_grid}, M∈{cfg.m_grid}, "
             f"K∈{cfg.k_grid}; roles: " + ", ".join(f"{r} `{i}`" for r, i in role_ids.items()) +
             f"; T {cfg.temperature}, top_p {cfg.top_p}; max tokens generator/feedback/editor "
             f"{cfg.max_tokens_generator}/{cfg.max_tokens_feedback}/{cfg.max_tokens_editor}; seed {cfg.seed}. "
             "Prompt templates: `paperlab/feedback_edit/prompts.py`; every sample in `trees.jsonl`.")
    run.finish(claims, results, sections=[setup, _tables(cfg, ev), _diagnostics(ev)], scale_note=SCALE_NOTE,
               title="Feedback-Edit inference-time scaling", paper=paper)
