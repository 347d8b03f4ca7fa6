"""The four claims of a run, each decided from intervals (SEIR and Darcy alike).

``cfm_matches_mcmc`` -- two-sided, against a converged MCMC reference, per reference case:

- C2ST accuracy (Wilson interval over the out-of-fold predictions) within ``0.5 ± C2ST_MARGIN``
  (0.6 = a total-variation distance of at least 0.2, as far as the classifier sees);
- per parameter, the mean shift in reference standard deviations within ``± MEAN_SHIFT_MARGIN``;
- per parameter, the ratio of standard deviations within ``[1 / STD_RATIO_BOUND, STD_RATIO_BOUND]``
  (too wide and too narrow both fail);
- the reference converged by its autocorrelation stop rule (if not, the claim cannot hold: that
  part is *inconclusive*).

``coverage_calibrated`` -- per parameter and level, the coverage of central credible intervals
within ``nominal ± COVERAGE_MARGIN`` (Wilson interval over the calibration cases); per parameter
no SBC rank non-uniformity (KS, Bonferroni over the parameters); and the SBC rank of the
*log-likelihood* (a data-dependent test quantity) with mean ``0.5 ± RANK_MARGIN`` and no
non-uniformity -- the prior itself is calibrated per parameter, but ranks the truth's likelihood
near the top, so a model that has not learnt to use the data fails here.

``error_falls_with_n`` -- Spearman rho < 0 and the largest-vs-smallest-N difference < 0.

``cfm_closer_than_sbi`` and ``cfm_samples_faster_than_sbi`` (SEIR, when peers ran) -- against sbi's NPE
and FMPE trained on the same simulator and budget (:mod:`paperlab.fm_inverse.peers`): per case and
peer, the C2ST difference (Newcombe interval) below 0, and the peer's sampling seconds over CFM's
above 1.

``cfm_faster_than_mcmc`` -- wall clock at matched accuracy: per reference case, the seconds the
paper's MH chain needs until its C2ST against the reference is no longer shown worse than CFM's
(at or below the upper end of CFM's Wilson interval: the earliest defensible match), over CFM's
seconds (a lower bound when the chain never gets there).

A claim of several parts holds when every part holds, is contradicted when any part is (as in
:func:`paperlab.core.runs.combine`). Parts carry their own acceptance range here
(:func:`paperlab.core.runs.claim_of_parts`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from paperlab.core.runs import Claim, claim_of_parts
from paperlab.core.stats import Estimate

#: C2ST accuracy must lie within 0.5 +- this (Bayes accuracy 0.6 <-> total variation 0.2)
C2ST_MARGIN = 0.1
#: |mean(CFM) - mean(reference)| / std(reference) at most this, per parameter
MEAN_SHIFT_MARGIN = 0.25
#: std(CFM) / std(reference) within [1 / this, this], per parameter
STD_RATIO_BOUND = 1.25
#: coverage of a central credible interval within nominal +- this, per parameter and level
COVERAGE_MARGIN = 0.1
#: mean normalised SBC rank of the log-likelihood within 0.5 +- this
RANK_MARGIN = 0.1
#: family-wise level of the SBC uniformity (KS) tests, Bonferroni over the ranked quantities
SBC_ALPHA = 0.05


def _nan(n: int, method: str) -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), n, method)


# ---------------------------------------------------------------------------------------------
# cfm_matches_mcmc
# ---------------------------------------------------------------------------------------------

def matches_parts(cases: list[dict], names) -> dict:
    """The parts of ``cfm_matches_mcmc`` for reference cases ``{"label", "c2st" (from
    :func:`~paperlab.fm_inverse.evaluate.c2st_test`), "moments" (from
    :func:`~paperlab.fm_inverse.evaluate.moment_comparison`), "reference_converged"}``."""
    parts: dict = {}
    for c in cases:
        lab = c["label"]
        conv = bool(c["reference_converged"])
        parts[f"{lab}: reference converged (autocorrelation rule)"] = (
            Estimate(float(conv), float(conv), float(conv), 1, "stop rule met (1) or step cap hit (0)", 1.0),
            "holds" if conv else "inconclusive")
        c2 = c["c2st"]["estimate"]
        parts[f"{lab}: C2ST accuracy"] = (replace(c2, method="C2ST accuracy, Wilson interval over out-of-fold "
                                                         "predictions"), (0.5 - C2ST_MARGIN, 0.5 + C2ST_MARGIN))
        for k in names:
            mo = c["moments"][k]
            parts[f"{lab}: {k} mean shift / ref std"] = (mo["mean_shift"], (-MEAN_SHIFT_MARGIN, MEAN_SHIFT_MARGIN))
            parts[f"{lab}: {k} std ratio"] = (mo["std_ratio"], (1 / STD_RATIO_BOUND, STD_RATIO_BOUND))
    return parts


def claim_matches(m: dict) -> Claim:
    cases = m["cases"]
    labels = [c["label"] for c in cases]
    parts = matches_parts(cases, m["param_names"]) if cases else {
        "no reference case": (_nan(0, "no reference case"), "inconclusive")}
    worst = max((c["c2st"]["accuracy"] for c in cases), default=float("nan"))
    return claim_of_parts(
        "cfm_matches_mcmc",
        f"The CFM posterior matches the {m['baseline']} posterior on every reference case: C2ST accuracy within "
        f"0.5 ± {C2ST_MARGIN}, and per parameter a mean shift within ±{MEAN_SHIFT_MARGIN} reference stds and a std "
        f"ratio within [{1 / STD_RATIO_BOUND:.2f}, {STD_RATIO_BOUND}] (two-sided)"
        + (f"; {m['baseline_note']}" if m.get("baseline_note") else ""),
        parts,
        note=f"units: posterior samples within each of {len(cases)} reference case(s) (CFM draws iid; reference "
             "thinned by its autocorrelation time); one trained model (one seed). Every part must hold.",
        cases=labels, worst_c2st=worst,
        trajectory_error_ratio=m.get("error_ratio"))


# ---------------------------------------------------------------------------------------------
# coverage_calibrated
# ---------------------------------------------------------------------------------------------

def calibration_parts(cov: dict, K: int, names, rank_u: np.ndarray, lik_u: np.ndarray | None) -> dict:
    """Per parameter and level coverage gaps (Wilson over the ``K`` cases), SBC KS tests, likelihood rank."""
    from paperlab.core.stats import mean_ci, wilson
    from paperlab.fm_inverse.evaluate import sbc_uniformity

    parts: dict = {}
    per = np.asarray(cov["per_param"])                          # (levels, P)
    for i, lv in enumerate(cov["levels"]):
        for j, name in enumerate(names):
            w = wilson(round(per[i, j] * K), K)
            parts[f"{name}: coverage - nominal at {lv:g}"] = (
                replace(w, value=w.value - lv, lo=w.lo - lv, hi=w.hi - lv,
                        method="coverage minus nominal, Wilson interval over cases"),
                (-COVERAGE_MARGIN, COVERAGE_MARGIN))
    quantities = list(names) + (["log-likelihood"] if lik_u is not None else [])
    u = rank_u if lik_u is None else np.column_stack([rank_u, lik_u])
    pvals = sbc_uniformity(u)
    threshold = SBC_ALPHA / len(quantities)
    for name, p in zip(quantities, pvals, strict=True):
        est = Estimate(p, p, p, int(u.shape[0]), f"KS p-value of the SBC ranks against uniform (reject below "
                                                  f"{threshold:.2g} = {SBC_ALPHA} / {len(quantities)}, Bonferroni)", 1.0)
        parts[f"{name}: SBC ranks not shown non-uniform"] = (est, "holds" if p >= threshold else "contradicted")
    if lik_u is not None:
        est = mean_ci(lik_u)
        parts["log-likelihood: mean normalised SBC rank"] = (
            replace(est, method="mean normalised rank of log p(d | m*) among the posterior samples, Student-t"),
            (0.5 - RANK_MARGIN, 0.5 + RANK_MARGIN))
    return parts


def claim_calibrated(m: dict) -> Claim:
    K = int(m["sbc_cases"])
    parts = calibration_parts(m["coverage"], K, m["param_names"], np.asarray(m["rank_u"]),
                              None if m.get("lik_u") is None else np.asarray(m["lik_u"]))
    lik = ("; the SBC rank of the log-likelihood is uniform (mean 0.5 ± "
           f"{RANK_MARGIN})" if m.get("lik_u") is not None else "")
    return claim_of_parts(
        "coverage_calibrated",
        f"Per parameter, the coverage of central credible intervals matches the nominal level within ±{COVERAGE_MARGIN} "
        f"at every level and the SBC ranks are not shown non-uniform (KS, family-wise {SBC_ALPHA}){lik}",
        parts,
        note=f"unit: {K} calibration cases drawn from the joint (random N, stratified times); one trained model.",
        nominal=m["coverage"]["levels"], empirical_mean_over_parameters=m["coverage"]["empirical"], cases=K)


# ---------------------------------------------------------------------------------------------
# error_falls_with_n
# ---------------------------------------------------------------------------------------------

def claim_error_falls(m: dict) -> Claim:
    from paperlab.core.runs import claim
    from paperlab.core.stats import paired_bootstrap_diff, spearman_ci

    err = np.asarray(m["err"], dtype=float)
    N = np.asarray(m["eval_N"], dtype=float)
    rho = spearman_ci(np.broadcast_to(N, err.shape).ravel(), err.ravel())
    ends = paired_bootstrap_diff(err[:, -1], err[:, 0])
    return claim(
        "error_falls_with_n",
        f"CFM {m['error_name']} error decreases as N grows (Spearman rho < 0 over the (truth, N) cases, and the error "
        f"at the largest N below the smallest N, paired over the {err.shape[0]} truths)",
        {"Spearman rho(N, error)": rho, f"error at N={m['eval_N'][-1]} - at N={m['eval_N'][0]}": ends},
        expect="less", null=0.0,
        note="units: (truth, N) cases for rho (the cases of one truth are not independent, which the Fisher-z "
             "interval ignores), truths for the end-to-end difference; one trained model (one seed).",
        spearman_rho=rho.value, N=list(m["eval_N"]), error=np.nanmean(err, axis=0).tolist())


# ---------------------------------------------------------------------------------------------
# cfm_faster_than_mcmc
# ---------------------------------------------------------------------------------------------

def speedup_at_matched_accuracy(speed_cases: list[dict]) -> tuple[Estimate, list[float], int]:
    """Geometric-mean speed-up over reference cases, percentile bootstrap over the cases.

    Each case: ``cfm_seconds``; ``mcmc_seconds`` (the time the MCMC chain needed to reach CFM's C2ST)
    or, with ``reached`` False, the whole chain's seconds -- then that case's ratio is a lower bound,
    and so is the estimate.
    """
    from paperlab.core.stats import bootstrap_ci

    ratios = [c["mcmc_seconds"] / c["cfm_seconds"] for c in speed_cases if c["cfm_seconds"] > 0]
    bounds = sum(c["reached"] is False for c in speed_cases)
    method = "geometric mean over reference cases, percentile bootstrap over the cases (2000 resamples)"
    if not ratios:
        return _nan(0, method), ratios, bounds
    logs = np.log(ratios)
    est = bootstrap_ci(logs)
    est = Estimate(float(np.exp(est.value)), float(np.exp(est.lo)), float(np.exp(est.hi)), est.n, method)
    if bounds:
        est = replace(est, method=method + f"; {bounds} case(s) are lower bounds (MCMC never reached CFM's C2ST)")
    return est, ratios, bounds


def claim_faster(m: dict) -> Claim:
    from paperlab.core.runs import claim

    est, ratios, bounds = speedup_at_matched_accuracy(m["speed_cases"])
    return claim(
        "cfm_faster_than_mcmc",
        m.get("faster_statement") or
        f"At matched accuracy (the same C2ST against the reference), drawing {m['timing_samples']} CFM posterior "
        f"samples is faster than running the paper's MH until it is as close to the reference (paper: up to ~2000x)",
        est, expect="greater", null=1.0,
        note="unit: reference cases; CFM time and C2ST at the run's ODE setting (the sweep over ODE steps is in the "
             "report); MH time at the first checked chain prefix whose C2ST (its second half against the reference) "
             "is at or below the upper end of CFM's 95 % Wilson interval (not shown worse). "
             "Wall clock on a possibly shared machine. Training is paid once and not included.",
        per_case_ratio=ratios, lower_bound_cases=bounds,
        cases=[c["label"] for c in m["speed_cases"]], **m.get("extra_timing", {}))


# ---------------------------------------------------------------------------------------------
# against sbi's NPE and FMPE (not in the paper: the peers a user would try first)
# ---------------------------------------------------------------------------------------------

def _peer_units(m: dict) -> list[tuple[str, str, dict, dict]]:
    """(method, case label, CFM's measurements, the peer's) for every peer that ran."""
    return [(method, c["label"], c, p) for c in m.get("peer_cases", [])
            for method, p in c.get("peers", {}).items() if p.get("status") == "ok"]


def _not_run(m: dict) -> str:
    notes = {p.get("status") for c in m.get("peer_cases", []) for p in c.get("peers", {}).values()}
    notes.discard("ok")
    return "; ".join(sorted(n for n in notes if n)) or "no peer ran (peers disabled by --peers)"


def claim_closer_than_peers(m: dict) -> Claim:
    from paperlab.core.runs import claim
    from paperlab.core.stats import proportion_diff

    units = _peer_units(m)
    evidence = {f"{c_label}: C2ST(CFM) - C2ST({method})": proportion_diff(c["cfm_correct"], c["cfm_total"],
                                                                          p["c2st_correct"], p["c2st_total"])
                for method, c_label, c, p in units} or {"no peer ran": _nan(0, _not_run(m))}
    return claim(
        "cfm_closer_than_sbi",
        "At the same simulation budget, the CFM posterior is closer to the converged reference than sbi's NPE and "
        "FMPE (lower C2ST accuracy on every reference case; each peer trained for that case's design alone)",
        evidence, expect="less", null=0.0,
        note="units: samples within each case (the two C2STs share the reference draws, which the independent-"
             "proportions interval ignores); one CFM model and one peer per design and method (one seed each).",
        peers={f"{method} {lab}": {"c2st": p["c2st"], "cfm_c2st": c["cfm_c2st"], "epochs": p["epochs"],
                                   "train_seconds": p["train_seconds"], "simulations": p["simulations"]}
               for method, lab, c, p in units})


def claim_samples_faster_than_peers(m: dict) -> Claim:
    from dataclasses import replace as _replace

    from paperlab.core.runs import claim
    from paperlab.core.stats import mean_ci

    evidence = {}
    for method, lab, c, p in _peer_units(m):
        logs = np.log(np.asarray(p["sample_seconds"], dtype=float)) - np.log(np.asarray(c["cfm_seconds"], dtype=float))
        e = mean_ci(logs)
        evidence[f"{lab}: {method} seconds / CFM seconds"] = _replace(
            e, value=float(np.exp(e.value)), lo=float(np.exp(e.lo)), hi=float(np.exp(e.hi)),
            method="geometric mean over paired timing repeats, Student-t on the log ratio")
    if not evidence:
        evidence = {"no peer ran": _nan(0, _not_run(m))}
    return claim(
        "cfm_samples_faster_than_sbi",
        f"Drawing {m['timing_samples']} posterior samples for one observation set takes CFM less time than sbi's "
        "NPE and FMPE (ratio of wall-clock seconds > 1 on every reference case)",
        evidence, expect="greater", null=1.0,
        note="unit: timing repeats after a warm-up; wall clock, same process and load. Training is paid once "
             "and not included (peers' training seconds are in the report).")


def make_claims(m: dict) -> list[Claim]:
    """The claims of a run from its measurements ``m`` (see the module docstring for the keys); the two
    peer claims only when ``m`` has ``peer_cases``."""
    claims = [claim_matches(m), claim_error_falls(m), claim_calibrated(m), claim_faster(m)]
    if "peer_cases" in m:
        claims += [claim_closer_than_peers(m), claim_samples_faster_than_peers(m)]
    return claims
