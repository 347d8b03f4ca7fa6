"""Claims, plots and report sections of ``paperlab priming run``."""

from __future__ import annotations

import numpy as np

from paperlab.core.runs import Claim, claim, markdown_table
from paperlab.priming.experiment import CROSS, DIRECTIONS, WITHIN, PrimingConfig, item_effects, significance
from paperlab.priming.grammar import ALTERNATIONS, PAIRS, STRUCTURES, Content, Grammar, realise
from paperlab.priming.regimes import CONTROL


def last_trained_step(cfg: PrimingConfig, regime: str, role: str) -> int:
    """The last checkpoint at which the regime still trains on the language ``role`` ("L1" / "L2"): the onset
    for L1 in the sequential regime (it sees L2 only afterwards), else the final step."""
    return cfg.onset if (regime == "sequential" and role == "L1") else cfg.steps


def make_claims(cfg: PrimingConfig, records: list[dict], results: dict) -> list[Claim]:
    """``within_language_priming``: the within-language effect is > 0 for each pair, regime and language, at the
    last checkpoint at which the model trains on that language (:func:`last_trained_step`; items of both
    alternations; mean over items with a Student-t interval). The sequential model's L1 at the final step
    (after half a training of L2 only: forgetting, not priming) is reported beside it.
    ``crosslingual_priming_emerges``: the cross-language effect (both directions, both alternations) at the
    final checkpoint exceeds the one at the L2 onset, for each pair, regime and direction (paired bootstrap over
    items), pooled over seeds and in each seed alone (item intervals miss the run-to-run spread, large here)."""
    from paperlab.core.stats import mean_ci, paired_bootstrap_diff

    final, onset = cfg.steps, cfg.onset
    within, within_tests, forgotten = {}, {}, {}
    cross, cross_tests, per_seed = {}, {}, {}
    for pair in cfg.pairs:
        for regime in cfg.regimes:
            for d in WITHIN:
                step = last_trained_step(cfg, regime, d[:2])
                x = item_effects(records, pair, regime, step, (d,))
                within[f"{pair}/{regime}/{d}@{step}"] = mean_ci(x)
                within_tests[f"{pair}/{regime}/{d}@{step}"] = _p(significance(x))
                if step != final:
                    forgotten[f"{pair}/{regime}/{d}@{final}"] = _p(significance(
                        item_effects(records, pair, regime, final, (d,))))
            after = item_effects(records, pair, regime, final, CROSS)
            before = item_effects(records, pair, regime, onset, CROSS)
            key = f"{pair}/{regime}"
            # each direction on its own (the paper reports asymmetries), pooled over seeds and, because training
            # runs differ more than items at this scale, in each seed alone
            for d in CROSS:
                for s in (None, *(cfg.seeds if len(cfg.seeds) > 1 else ())):
                    recs = records if s is None else [r for r in records if r["seed"] == s]
                    cross[f"{key}/{d}" + ("" if s is None else f"/seed {s}")] = paired_bootstrap_diff(
                        item_effects(recs, pair, regime, final, (d,)), item_effects(recs, pair, regime, onset, (d,)),
                        n_boot=cfg.n_boot, seed=cfg.item_seed)
            cross_tests[key] = {"final": _p(significance(after)), "onset": _p(significance(before)),
                                "final_minus_onset": _p(significance(after - before))}
            per_seed[key] = {str(s): float(np.mean(_seed_effects(records, pair, regime, final, s)
                                                   - _seed_effects(records, pair, regime, onset, s)))
                             for s in cfg.seeds}
    return [
        claim("within_language_priming",
              "Within-language structural priming: P_N(T_x|P_x) - P_N(T_x|P_y) > 0 for each language, regime and "
              "pair, at the last checkpoint trained on that language (final; onset for sequential L1)", within,
              expect="greater", measure="normalised priming effect, items of both alternations, mean over seeds",
              tests=within_tests, sequential_l1_at_final_step=forgotten),
        claim("crosslingual_priming_emerges",
              "Cross-language priming emerges after L2 onset: the L1->L2 and the L2->L1 effect at the final "
              "checkpoint each exceed the effect at the onset, for each regime and pair, pooled over seeds and in "
              "every seed (monolingual documents)", cross,
              expect="greater", measure="normalised priming effect, final minus onset, paired over items "
              "(both alternations), per direction", tests=cross_tests, final_minus_onset_per_seed=per_seed),
    ]


def _seed_effects(records: list[dict], pair: str, regime: str, step: int, seed: int) -> np.ndarray:
    return item_effects([r for r in records if r["seed"] == seed], pair, regime, step, CROSS)


def _p(row: dict) -> dict:
    return {k: row[k] for k in ("mean", "t_p", "wilcoxon_p", "n")}


# ----------------------------------------------------------------------------------------------
# Plots


_COLOURS = {"L1>L1": "tab:blue", "L2>L2": "tab:orange", "L1>L2": "tab:green", "L2>L1": "tab:red"}


def _regime_label(cfg: PrimingConfig, regime: str) -> str:
    if regime == CONTROL:
        return f"control: simultaneous + {cfg.control_codeswitch:g} code-switched"
    return regime


def _rows(results: dict, pair: str, regime: str, direction: str, alternation: str = "both") -> list[dict]:
    return sorted((r for r in results["rows"] if r["pair"] == pair and r["regime"] == regime
                   and r["direction"] == direction and r["alternation"] == alternation), key=lambda r: r["step"])


def plots(run, cfg: PrimingConfig, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_p, n_r = len(cfg.pairs), len(cfg.trained_regimes)
    for kind in ("effect", "cross"):
        fig, axes = plt.subplots(n_p, n_r, figsize=(5.2 * n_r, 3.6 * n_p), squeeze=False, sharey=True)
        for i, pair in enumerate(cfg.pairs):
            for j, regime in enumerate(cfg.trained_regimes):
                ax = axes[i][j]
                for d in (DIRECTIONS if kind == "effect" else CROSS):
                    rs = _rows(results, pair, regime, d)
                    xs = [r["step"] for r in rs]
                    ax.plot(xs, [r["mean"] for r in rs], marker="o", ms=3, color=_COLOURS[d], label=d.replace(">", "→"))
                    ax.fill_between(xs, [r["lo"] for r in rs], [r["hi"] for r in rs], color=_COLOURS[d], alpha=0.15)
                ax.axvline(cfg.onset, color="k", ls="--", lw=1)
                ax.axhline(0, color="grey", lw=0.8)
                ax.set_title(f"{pair} pair, {_regime_label(cfg, regime)}", fontsize=10)
                ax.set_xlabel("training step (dashed: L2 onset)")
                if j == 0:
                    ax.set_ylabel("priming effect (P_N)")
                if kind == "cross":
                    ax.set_xlim(cfg.onset * 0.9, cfg.steps * 1.02)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        if kind == "effect":
            run.savefig(fig, "priming_effect_by_step", "Normalised priming effect P_N(T_x|P_x) - P_N(T_x|P_y) "
                        "per direction (prime→target) at every checkpoint, mean over items with 95% t-interval")
        else:
            run.savefig(fig, "crosslingual_emergence", "Cross-language priming effect after the L2 onset "
                        "(zoom), both regimes" + (" and the code-switching control (not a claim)"
                                                  if CONTROL in cfg.trained_regimes else "")
                        + ", with 95% t-intervals")
    fig, axes = plt.subplots(1, n_p, figsize=(5.2 * n_p, 3.4), squeeze=False)
    for i, pair in enumerate(cfg.pairs):
        ax = axes[0][i]
        for regime, ls, mk in zip(cfg.trained_regimes, ("-", "--", ":"), ("o", "s", "^"), strict=False):
            for role, c in (("L1", "tab:blue"), ("L2", "tab:orange")):
                ax.plot(results["steps"], results["loss"][f"{pair}/{regime}/{role}"], ls=ls, color=c, marker=mk,
                        ms=3, label=f"{role}, {regime}")
        ax.axvline(cfg.onset, color="k", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{pair} pair: held-out loss per language")
        ax.set_xlabel("training step")
        ax.set_ylabel("nats / token")
        ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "heldout_loss", "Held-out next-token loss per language at every checkpoint")


# ----------------------------------------------------------------------------------------------
# Report sections


def _examples(grammar: Grammar, pair: str) -> str:
    lines = []
    for lang in PAIRS[pair]:
        lex = grammar.lex[lang]
        for alt, c in (("dative", Content("dative", 0, 0, 0, 1)), ("voice", Content("voice", 0, 0, 1))):
            x, y = STRUCTURES[alt]
            lines.append(f"| {lang} | {alt} | `{' '.join(realise(lex, lang, c, x))}` | "
                         f"`{' '.join(realise(lex, lang, c, y))}` |")
    return "| language | alternation | x | y |\n|---|---|---|---|\n" + "\n".join(lines)


def _fmt_p(p: float) -> str:
    return "–" if p is None or not np.isfinite(p) else f"{p:.2g}"


def sections(cfg: PrimingConfig, grammar: Grammar, results: dict, claims: list[Claim]) -> list[str]:
    out = []
    setup = [
        "## Setup",
        "",
        f"Language pairs: {', '.join(f'{p} (L1 = {PAIRS[p][0]}, L2 = {PAIRS[p][1]})' for p in cfg.pairs)}. "
        f"Word-level vocabulary of {results['vocab_size']} tokens over all languages (disjoint lexicons; "
        "`.` and `<doc>` shared). Structural persistence: each alternating sentence copies the previous "
        f"sentence's structure of the same alternation in its document with probability {cfg.persistence:g}, else "
        f"draws x with probability {cfg.base_rate:g}, so a model that matched the data exactly would show a "
        f"within-language effect of about {cfg.persistence:g} (P(x | previous x) - P(x | previous y) = persistence; "
        "the lexical content of the two alternants is equally likely). Documents are monolingual in both regimes: nothing in their "
        "data links an L1 structure to an L2 one"
        + (f" (the positive-control model, simultaneous with a share {cfg.control_codeswitch:g} of code-switched "
           "documents after the onset, is the exception and is not used by any claim)." if cfg.control_codeswitch
           else ".")
        + f" Distinct text: {cfg.l1_tokens:,} L1 and {cfg.l2_tokens:,} L2 tokens.",
        "",
        "Examples (same lexical content, structure x / y):",
        "",
        *(_examples(grammar, p) + "\n" for p in cfg.pairs),
        f"Model: core Transformer, {cfg.n_layers} layers, d={cfg.d_model}, {cfg.n_heads} heads, trained with the core "
        f"trainer for {cfg.steps} steps (batch {cfg.batch_size} x {cfg.seq_len} tokens, lr {cfg.lr:g}); L2 from step "
        f"{cfg.onset}. Seeds: {', '.join(map(str, cfg.seeds))}. Checkpoints: {', '.join(map(str, results['steps']))}.",
        "",
        "Measure (primary): P_N(T_x|P) = P(T_x|P) / (P(T_x|P) + P(T_y|P)), effect = P_N(T_x|P_x) - P_N(T_x|P_y) "
        "per item, P(T|P) the product of the target's token probabilities after `<doc> prime`. Identical for x "
        "and y targets (P_N(T_y|P) = 1 - P_N(T_x|P)). Secondary: Prime-LM's log ratio, mean of "
        "log P(T_x|P_x) - log P(T_x|P_y) and log P(T_y|P_y) - log P(T_y|P_x). "
        f"{cfg.n_items} items per alternation and direction, no content word shared by prime and target; per "
        "checkpoint a mean over items (averaged over seeds) with a Student-t 95% interval, a one-sample t-test and "
        "a Wilcoxon signed-rank test against 0 (scipy).",
    ]
    out.append("\n".join(setup))
    for pair in cfg.pairs:
        rows = []
        for regime in cfg.trained_regimes:
            for step, label in ((cfg.onset, "onset"), (cfg.steps, "final")):
                for d in DIRECTIONS:
                    for alt in ("both", *ALTERNATIONS):
                        r = [x for x in _rows(results, pair, regime, d, alt) if x["step"] == step]
                        if r:
                            r = r[0]
                            rows.append([_regime_label(cfg, regime), f"{label} ({step})", d.replace(">", "→"), alt,
                                         f"{r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]", _fmt_p(r["t_p"]),
                                         _fmt_p(r["wilcoxon_p"]), f"{r['logratio']:+.3f}"])
        out.append(f"## Priming effects, {pair} pair\n\n" + markdown_table(
            ["regime", "checkpoint", "prime→target", "alternation", "effect P_N [95% CI]", "t-test p", "Wilcoxon p",
             "log ratio"], rows))
    verdict = {c.id: c.verdict for c in claims}
    if CONTROL in cfg.trained_regimes:
        out.append(control_section(cfg, results))
    out.append("## Verdict\n\n" + "\n".join(f"- `{k}`: **{v}**" for k, v in verdict.items()) + "\n\n"
               "The claims are decided on the sequential and simultaneous models only, whose documents are "
               "monolingual: any cross-language effect there comes from representations the model shares between "
               "its languages, not from the data." + _forgetting(cfg, results))
    return out


def _forgetting(cfg: PrimingConfig, results: dict) -> str:
    """The sequential model's L1 after half a training on L2 only (why its L1 is tested at the onset)."""
    if "sequential" not in cfg.regimes:
        return ""
    steps = results["steps"]
    i0, i1 = steps.index(cfg.onset), steps.index(cfg.steps)
    parts = []
    for pair in cfg.pairs:
        loss = results["loss"][f"{pair}/sequential/L1"]
        eff = [r for r in _rows(results, pair, "sequential", "L1>L1") if r["step"] == cfg.steps]
        parts.append(f"{pair}: L1 held-out loss {loss[i0]:.2f} nats/token at the onset, {loss[i1]:.2f} at the end"
                     + (f", L1→L1 effect at the end {eff[0]['mean']:+.3f}" if eff else ""))
    return (" The sequential model's L1 is tested at the onset, its last checkpoint trained on L1: after half a "
            "training on L2 only, what its L1 shows at the end is retention, not priming (" + "; ".join(parts)
            + "; reported in `results.json` beside the claim).")


def control_section(cfg: PrimingConfig, results: dict) -> str:
    """The code-switching positive control: cross-language effect at the onset and at the end."""
    lines = ["## Positive control: code-switched documents (not a claim)", "",
             f"A third model continues from the onset like the simultaneous one, but {cfg.control_codeswitch:.0%} of "
             "its post-onset documents switch language between sentences with structural persistence across the "
             "switch. Cross-language priming is in its data by construction; a measure that missed it here would "
             "be broken.", ""]
    rows = []
    for pair in cfg.pairs:
        for d in CROSS:
            for step, label in ((cfg.onset, "onset"), (cfg.steps, "final")):
                r = [x for x in _rows(results, pair, CONTROL, d) if x["step"] == step]
                if r:
                    r = r[0]
                    rows.append([pair, d.replace(">", "→"), f"{label} ({step})",
                                 f"{r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]", _fmt_p(r["t_p"])])
    return "\n".join(lines) + "\n" + markdown_table(["pair", "prime→target", "checkpoint", "effect P_N [95% CI]",
                                               "t-test p"], rows)


def scale_note(cfg: PrimingConfig) -> str:
    return (
        "The paper trains 124M-parameter GPT-2 models for 128,000 steps on 12B tokens of OSCAR text per pair "
        "(English with Dutch, Spanish, Polish, Greek) and measures priming with natural-language stimuli. Here: "
        f"a {cfg.n_layers}-layer, d={cfg.d_model} transformer for {cfg.steps} steps on template-grammar languages "
        "with an English-like L1 and a pseudo-language L2 (same word order, or verb-final with case postpositions "
        "and another passive), structural persistence built into the documents as a knob (natural text has it; "
        "the paper's models learned priming from it), word-level tokens, and a scaled checkpoint schedule "
        "(dense right after the onset, as in the paper). The regimes share their pre-onset training (the same L1 "
        "batches) and branch at the onset. The priming measure follows the fact sheet's (unverified) reading of "
        "the paper; Prime-LM's verified log ratio is reported beside it. Intervals and tests are over items "
        f"(each item's effect averaged over the {len(cfg.seeds)} training seed(s)): they describe the models "
        "trained here, not the spread between training runs, which is large at this scale (per-seed values of the "
        "cross-language claim are in `results.json`)."
    )
