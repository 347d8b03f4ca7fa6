"""Claims, report sections and plots of ``paperlab requant run`` (the numbers come from
:mod:`paperlab.requant.experiment`; every verdict is read from an interval computed here).

Units of the intervals: calibration sequences (Taylor and PQI estimates: each sequence has its own
measured loss change and its own estimates; paired percentile bootstrap), folds of calibration
sequences (concentration: delete-one-fold jackknife of the top-share), evaluation windows (perplexity
differences: paired percentile bootstrap over the sliding windows of WikiText-2 test).
"""

from __future__ import annotations

import math

import numpy as np

from paperlab.core.runs import Claim, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, index_bootstrap, jackknife_ci, paired_bootstrap_diff

LABELS = {"fp": "full precision", "base": "base (coarse groups, fewer bits)", "base_eq": "base, equal bits (fine groups)",
          "magnitude": "+ magnitude-selected sparse", "fisher": "+ Fisher (grad²)-selected sparse",
          "requant": "+ ReQuant (PQI)"}
ALTERNATIVES = ("base_eq", "magnitude", "fisher")
RANK_LABELS = {"abs": "|dF_i|", "signed": "signed dF_i", "grad_dw": "path-mean |grad| x |dw|"}


FOLDS = "folds of calibration sequences"


def label(cfg, method: str) -> str:
    if method == "requant_ablation":
        return f"(ablation) ReQuant ranked by {RANK_LABELS[cfg.ablation_rank_key]}"
    return LABELS[method] + (f", ranked by {RANK_LABELS[cfg.rank_key]}" if method == "requant" else "")


def _ppl(nll: np.ndarray, tok: np.ndarray, idx: np.ndarray) -> float:
    return float(np.exp(nll[idx].sum() / tok[idx].sum()))


def ppl_diff(a: dict, b: dict, n_boot: int, seed: int) -> Estimate:
    """``ppl(a) - ppl(b)`` over the same evaluation windows, paired percentile bootstrap."""
    na, ta = np.asarray(a["window_nll"]), np.asarray(a["window_tokens"])
    nb, tb = np.asarray(b["window_nll"]), np.asarray(b["window_tokens"])
    return index_bootstrap(len(na), lambda i: _ppl(na, ta, i) - _ppl(nb, tb, i), n_boot, seed)


def best_alternative(comp: dict) -> str:
    return min(ALTERNATIVES, key=lambda m: comp[m]["ppl"])


def _rel_err(est: np.ndarray, act: np.ndarray, i: np.ndarray) -> float:
    return float((est[i].mean() - act[i].mean()) / act[i].mean())


# ----------------------------------------------------------------------------------------------
# Claims


def make_claims(cfg, results: dict) -> list[Claim]:
    models = results["models"]
    nb, seed = cfg.n_boot, cfg.seed
    claims = []

    # Table 1: Taylor estimates fall short of the measured change of full quantization
    parts, vals = {}, {}
    for key, r in models.items():
        s = r["sensitivity"]
        act = np.asarray(s["actual"])
        for name, label in (("first", "first-order"), ("second", "second-order (Fisher)")):
            est = np.asarray(s["taylor"][name])
            parts[f"{key}: measured dF - {label}"] = paired_bootstrap_diff(act, est, n_boot=nb, seed=seed)
            vals[f"{key}_{name}_over_measured"] = float(est.mean() / act.mean())
        vals[f"{key}_measured_dF"] = float(act.mean())
    claims.append(claim(
        "taylor_underestimates",
        f"first- and second-order Taylor estimates fall short of the measured loss change of quantizing every "
        f"target layer to {cfg.bits[0]} bits (paper, Llama-3.2-1B: 8.9e-4 and -6.1e-5 vs 0.100)",
        parts, expect="greater", null=0.0, **vals))

    # Table 3: PQI converges to the measured change as N grows
    tparts, vals = {}, {}
    n_lo, n_hi = min(cfg.convergence_points), max(cfg.convergence_points)
    rule = cfg.scan_rule
    for key, r in models.items():
        s = r["sensitivity"]
        act = np.asarray(s["actual"])
        hi = np.asarray(s["estimates"][f"{rule}/{n_hi}"])
        lo = np.asarray(s["estimates"][f"{rule}/{n_lo}"])
        n = len(act)
        e_hi = index_bootstrap(n, lambda i, hi=hi, act=act: _rel_err(hi, act, i), nb, seed)
        e_shrink = index_bootstrap(n, lambda i, hi=hi, lo=lo, act=act: abs(_rel_err(lo, act, i))
                                   - abs(_rel_err(hi, act, i)), nb, seed)
        tparts[f"{key}: relative error of PQI at N={n_hi}"] = (e_hi, {"expect": "within", "margin": cfg.converge_margin})
        tparts[f"{key}: |error| at N={n_lo} minus at N={n_hi}"] = (e_shrink, {"expect": "greater"})
        vals[f"{key}_relative_error_by_N"] = {n_: float(np.mean(s["estimates"][f"{rule}/{n_}"]) / act.mean() - 1)
                                              for n_ in cfg.convergence_points}
    claims.append(claim_of_parts(
        "pqi_converges",
        f"PQI ({rule} rectangle rule) is within {cfg.converge_margin:.0%} of the measured loss change at N={n_hi}, "
        f"and its error shrinks from N={n_lo} (paper, Table 3: 0.1042, 0.1032, 0.1028, 0.1026 for N=4..32 vs 0.1024)",
        tparts, rule=rule, **vals))

    # Table 5: PQI is concentrated on few weights. Measured on |dF_i|: about half the dF_i are negative, so the
    # signed total is a small residual and "shares" of it exceed 100% (reported beside, not tested).
    parts, vals = {}, {}
    j = cfg.fractions.index(cfg.claim_fraction)
    for key, r in models.items():
        c = r["sensitivity"]["concentration"]
        loo = np.asarray(c["jackknife_abs"])[:, j]
        parts[f"{key}: share of sum |dF_i| in the top {cfg.claim_fraction:.1%}"] = jackknife_ci(c["abs"][j], loo, unit=FOLDS)
        vals[f"{key}_abs_shares"] = dict(zip([f"{f:.2%}" for f in c["fractions"]], c["abs"], strict=True))
        vals[f"{key}_signed_shares"] = dict(zip([f"{f:.2%}" for f in c["fractions"]], c["signed"], strict=True))
        vals[f"{key}_negative_share"] = c["negative_share"]
    claims.append(claim(
        "pqi_concentrated",
        f"the top {cfg.claim_fraction:.0%} of weights by |PQI| hold more than {cfg.concentration_null:.0%} of the total "
        f"|PQI| ({cfg.concentration_null / cfg.claim_fraction:.0f}x their share; paper: 0.71% hold 11.29%)",
        parts, expect="greater", null=cfg.concentration_null, **vals))

    # Tables 6-7: ReQuant beats the best alternative at equal bits
    parts, vals = {}, {}
    b = cfg.bits[0]
    for key, r in models.items():
        comp = r["compare"][b]
        alt = best_alternative(comp)
        parts[f"{key}: ppl(ReQuant) - ppl({alt})"] = ppl_diff(comp["requant"], comp[alt], nb, seed)
        vals[f"{key}_ppl"] = {m: comp[m]["ppl"] for m in comp}
        vals[f"{key}_bits_per_weight"] = {m: comp[m]["bits_per_weight"] for m in comp}
    claims.append(claim(
        "requant_beats_alternatives",
        f"at {b} bits and equal total bits per weight, ReQuant has a lower WikiText-2 perplexity than the best of "
        "the dense base with finer groups, magnitude-selected and Fisher-selected dense-and-sparse",
        parts, expect="less", null=0.0, **vals))
    return claims


# ----------------------------------------------------------------------------------------------
# Report


def _f(x, d=4) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}g}"


def _ci(e: Estimate, d=3) -> str:
    return f"{e.value:+.{d}f} [{e.lo:+.{d}f}, {e.hi:+.{d}f}]" if e.finite else f"{e.value:+.{d}f}"


def sections(cfg, results: dict, claims: list[Claim]) -> list[str]:
    out = [_setup(cfg, results)]
    for key, r in results["models"].items():
        out += [_taylor(cfg, key, r), _concentration(cfg, key, r)]
        out += [_ppl_table(cfg, key, r, b) for b in cfg.bits]
        out.append(_requant_details(cfg, key, r))
    out.append(_verdict(cfg, results, claims))
    out.append(_costs(results))
    return out


def _setup(cfg, results: dict) -> str:
    lines = ["## Setup", ""]
    for key, r in results["models"].items():
        unit = r["unit"]
        s = r["sensitivity"]
        lines.append(
            f"- **{key}**: {r['describe']}. Quantized: {len(r['layers'])} linear layers "
            f"({r['n_weights']:,} weights{'' if cfg.blocks is None or key == 'tiny' else f', decoder blocks {cfg.blocks}'}"
            "; embeddings, norms and the LM head stay in full precision). Calibration: "
            f"{s['calib_seqs']} sequences of {s['calib_len']} {unit}s from WikiText-2 `valid.txt`. Evaluation: the "
            f"first {r['eval_tokens']:,} {unit}s of WikiText-2 `test.txt`, sliding windows of context "
            f"{r['context']} and stride {r['stride']} ("
            + (f"non-overlapping windows: each {unit} scored once, from 0 to {r['context'] - 1} {unit}s of context"
               if r['stride'] == r['context'] else
               f"each {unit} scored once, with at least {r['context'] - r['stride']} {unit}s of context after the "
               "first window")
            + f"), no BOS token added. Dense "
            f"groups: {r['group_size']} (dense-and-sparse models) and {r['eq_group_size']} (the equal-bits base).")
    lines += ["", f"Base quantizer: {cfg.base.upper()}, asymmetric, fp16 scale and minimum per group. Sparse entries: "
              f"fp16 value + int32 index = {cfg.sparse_bits} bits. The sparse budget of every dense-and-sparse model is "
              "r = (32/g_fine - 32/g_coarse) / 48 of the weights, which puts it at exactly the bits of the dense base "
              "with the finer groups (the measured bits per weight are in each table). ReQuant spends "
              f"{cfg.outlier_share:.0%} of it on outliers (allocation temperature T = {cfg.temperature:g}, cap "
              f"{cfg.max_layer_ratio:.0%} per layer) and the rest on significant weights in {cfg.steps} detach steps; its "
              f"PQI uses N = {cfg.requant_points} points of the {cfg.requant_rule} rule; significant weights ranked by "
              f"{RANK_LABELS[cfg.rank_key]} (the paper's Table 5 ranks weights into shares below 100%, which a signed "
              "ranking cannot give when half the dF_i are negative)"
              + (f"; an ablation ranks them by {RANK_LABELS[cfg.ablation_rank_key]} (reported, not in the claims)"
                 if cfg.ablation_rank_key and cfg.ablation_rank_key != cfg.rank_key else "")
              + ". The sensitivity scan uses the "
              f"{cfg.scan_rule} rectangle rule on t = k/{cfg.scan_points}."]
    return "\n".join(lines)


def _taylor(cfg, key: str, r: dict) -> str:
    s = r["sensitivity"]
    act = np.asarray(s["actual"])
    m = act.mean()
    rows = [["measured dF = F(w~) - F(w)", m, 1.0]]
    for name, label in (("first", "first-order Taylor g·dw"), ("second", "second-order, empirical Fisher"),
                        ("second_token_fisher", "second-order, token-scaled Fisher (T·F)")):
        v = float(np.mean(s["taylor"][name]))
        rows.append([label, v, v / m])
    conv = []
    for n in cfg.convergence_points:
        row = [n]
        for rule in ("right", "left", "trapezoid", "midpoint"):
            e = s["estimates"].get(f"{rule}/{n}")
            row.append(f"{np.mean(e):.5g} ({np.mean(e) / m - 1:+.2%})" if e is not None else "–")
        conv.append(row)
    return (f"## {key}: Taylor estimates vs. the measured loss change ({s['quantizer']}, all target layers)\n\n"
            f"Calibration loss {np.mean(s['loss_fp']):.4f} nats/{r['unit']} at full precision. Means over "
            f"{len(act)} calibration sequences.\n\n"
            + markdown_table(["estimate", "dF", "ratio to measured"], rows)
            + "\n\nPQI (mean over sequences; relative error to the measured dF in brackets):\n\n"
            + markdown_table(["N", "right rectangle (paper)", "left rectangle", "trapezoid", "midpoint"], conv))


def _concentration(cfg, key: str, r: dict) -> str:
    c = r["sensitivity"]["concentration"]
    rows = []
    for j, f in enumerate(c["fractions"]):
        e = jackknife_ci(c["signed"][j], np.asarray(c["jackknife_signed"])[:, j], unit=FOLDS)
        ea = jackknife_ci(c["abs"][j], np.asarray(c["jackknife_abs"])[:, j], unit=FOLDS)
        rows.append([f"{f:.2%}", f"{e.value:.2%} [{e.lo:.2%}, {e.hi:.2%}]", f"{ea.value:.2%} [{ea.lo:.2%}, {ea.hi:.2%}]"])
    return (f"## {key}: concentration of PQI\n\n"
            f"Share of the total PQI held by the top weights. {c['negative_share']:.1%} of the weights have dF_i < 0 "
            "(their quantization error lowers the loss along the path), so the signed total sum dF_i is a small "
            "residual of cancelling terms and the top weights by dF_i hold more than all of it (second column): the "
            "signed share is ill-conditioned, and the claim uses the share of sum |dF_i| of the top weights by "
            "|dF_i| (third column; the paper's Table 5 does not say which). 95% jackknife intervals over folds of "
            "calibration sequences.\n\n"
            + markdown_table(["top fraction of weights", "share of sum dF_i (by dF_i)", "share of sum |dF_i| (by |dF_i|)"],
                             rows)
            + "\n\nPaper (Llama-3.2-1B): 0.15% -> 4.53%, 0.71% -> 11.29%, 5.25% -> 34.06%.")


def _ppl_table(cfg, key: str, r: dict, bits: int) -> str:
    comp = r["compare"][bits]
    rq = comp["requant"]
    unit = r["unit"]
    rows = [[LABELS["fp"], 32.0, 0, _f(r["fp"]["calib_loss"]), r["fp"]["ppl"], "–"]]
    for m, rec in comp.items():
        kinds = rec["kinds"]
        sparse = ", ".join(f"{v:,} {k}" for k, v in kinds.items()) or "0"
        d = "–" if m == "requant" else _ci(ppl_diff(rq, rec, cfg.n_boot, cfg.seed))
        rows.append([label(cfg, m), f"{rec['bits_per_weight']:.4f}", sparse, _f(rec["calib_loss"]), rec["ppl"], d])
    alt = best_alternative(comp)
    gap = ppl_diff(rq, comp[alt], cfg.n_boot, cfg.seed)
    return (f"## {key}: WikiText-2 perplexity at {bits} bits\n\n"
            f"Per-{unit} perplexity; the last column is ppl(ReQuant) - ppl(method), 95% paired bootstrap over "
            f"{len(rq['window_nll'])} evaluation windows (negative: ReQuant is better).\n\n"
            + markdown_table(["model", "bits/weight", "sparse entries", "calib loss", "WikiText-2 ppl",
                              "ReQuant - this"], rows)
            + f"\n\nGap to the best alternative at equal bits ({LABELS[alt]}): {_ci(gap)} perplexity "
            f"({gap.value / comp[alt]['ppl']:+.2%}). On the calibration sequences that ReQuant's PQI was computed on, "
            f"its loss is {rq['calib_loss'] - comp[alt]['calib_loss']:+.4f} nats/{unit} from that alternative's and "
            f"{rq['calib_loss'] - r['fp']['calib_loss']:+.4f} from full precision's: the gap between this and the "
            "test-set difference is how much of the selection fits the calibration set only.")


def _requant_details(cfg, key: str, r: dict) -> str:
    out = [f"## {key}: what ReQuant chose", ""]
    for bits, comp in r["compare"].items():
        info = comp["requant"]["info"]
        ratios = info.get("layer_ratio", {})
        if not ratios:
            continue
        top = sorted(ratios.items(), key=lambda kv: -kv[1])[:5]
        low = sorted(ratios.items(), key=lambda kv: kv[1])[:3]
        steps = "; ".join(f"step {s['step']}: PQI dF {s['pqi_before']:.4g} before, {s['added']:,} restored"
                          for s in info.get("steps", []))
        out.append(f"- {bits} bits: outlier ratio per layer from {min(ratios.values()):.3%} to "
                   f"{max(ratios.values()):.3%} (uniform would be {info['ratio'] * cfg.outlier_share:.3%}); highest: "
                   + ", ".join(f"`{n}` {v:.3%}" for n, v in top) + "; lowest: "
                   + ", ".join(f"`{n}` {v:.3%}" for n, v in low) + f". Detach: {steps}.")
    return "\n".join(out)


def _verdict(cfg, results: dict, claims: list[Claim]) -> str:
    by = {c.id: c for c in claims}
    lines = ["## Verdict", ""]
    for cid in ("taylor_underestimates", "pqi_converges", "pqi_concentrated", "requant_beats_alternatives"):
        if cid in by:
            lines.append(f"- `{cid}`: **{by[cid].verdict}**.")
    b = cfg.bits[0]
    for key, r in results["models"].items():
        comp = r["compare"][b]
        alt = best_alternative(comp)
        gap = ppl_diff(comp["requant"], comp[alt], cfg.n_boot, cfg.seed)
        lines.append(f"- {key}, {b} bits: ReQuant {comp['requant']['ppl']:.3f} vs the best alternative "
                     f"({LABELS[alt]}) {comp[alt]['ppl']:.3f}: gap {_ci(gap)}; base at the coarse groups "
                     f"{comp['base']['ppl']:.3f}, full precision {r['fp']['ppl']:.3f}.")
    return "\n".join(lines)


def _costs(results: dict) -> str:
    rows = []
    for key, r in results["models"].items():
        s = r["sensitivity"]
        rq = [c["requant"]["seconds"] for c in r["compare"].values()]
        rows.append([key, s["tokens_per_point"], s["seconds_per_point"],
                     s["seconds_per_point"] * s["scan_points"], s["seconds"], float(np.mean(rq)), r["seconds"]])
    return ("## Cost (this machine)\n\n"
            + markdown_table(["model", "calibration tokens per point", "s per PQI point", "s per N-point PQI",
                              "sensitivity step s", "ReQuant + eval s (mean per bit width)", "model total s"], rows))


def scale_note(cfg) -> str:
    return (
        "The paper quantizes Llama-3.2-1B/3B with AWQ, SqueezeLLM and QTIP (PQI from 100 sequences of 2,048 "
        "tokens, N = 32) and evaluates WikiText-2 and MATH. Here, on 2 CPU cores: SmolLM2-135M (the default LM, "
        f"whose weights were already 4-bit Q4_1 with groups of 32 — we re-quantize at {' and '.join(map(str, cfg.bits))} "
        f"bits with groups of {cfg.group_size}/{cfg.eq_group_size}, which do not coincide with that grid) and a small "
        "full-precision "
        "transformer trained here at character level, whose weights are genuinely continuous. The base is group-wise "
        f"{cfg.base.upper()}; calibration uses WikiText-2 `valid.txt` (its training split is not available offline) "
        f"and evaluation a prefix of `test.txt`. ReQuant's selection uses N = {cfg.requant_points} PQI points "
        "per step (the paper: 32). The quick tier works at 3 bits only, quantizes only the default LM's last two "
        "decoder blocks, trains a 2-layer tiny LM for 250 steps, calibrates on 8 sequences of 192 tokens and "
        "evaluates 8,192 tokens (characters for the tiny LM); its intervals are correspondingly wide.")


def plots(run, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, r in results["models"].items():
        c = r["sensitivity"]["concentration"]
        ax1.plot(np.asarray(c["curve_x"]) * 100, np.asarray(c["curve_abs"]) * 100, marker=".", label=f"{key}: |dF_i|")
        s = r["sensitivity"]
        act = np.mean(s["actual"])
        for rule, mk in (("right", "o"), ("left", "s"), ("trapezoid", "^")):
            ns = sorted(int(k.split("/")[1]) for k in s["estimates"] if k.startswith(rule + "/"))
            err = [abs(np.mean(s["estimates"][f"{rule}/{n}"]) / act - 1) for n in ns]
            ax2.loglog(ns, err, marker=mk, label=f"{key}: {rule}")
    ax1.plot([0.01, 100], [0.01, 100], color="grey", lw=0.8, label="uniform")
    ax1.set_xscale("log")
    ax1.set_xlabel("top % of weights (ranked by |dF_i|)")
    ax1.set_ylabel("% of total |PQI|")
    ax1.set_title("PQI concentration")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("N (gradient evaluations on the path)")
    ax2.set_ylabel("|PQI / measured dF - 1|")
    ax2.set_title("PQI convergence")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    run.savefig(fig, "pqi_concentration_convergence",
                "Left: share of sum |dF_i| held by the top weights by |dF_i|. Right: relative error of PQI vs N.")
