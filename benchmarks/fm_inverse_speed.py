"""Time to a posterior: the trained CFM model vs. the paper's Metropolis-Hastings at comparable error.

For the paper's SEIR test case (m_true, N observations at linspace(1, 3, N), noisy), measure

- CFM: wall-clock to draw 1,000 posterior samples in one batch (median of repeats), and the
  posterior-mean trajectory error (the paper's metric for MCMC);
- MH (the paper's baseline: one chain, proposal 0.02, default solve_ivp tolerances, random start,
  no burn-in): the wall-clock until the running chain mean's trajectory error is comparable
  (within 10 % or 0.5 percentage points of CFM's) and stays there up to ``--max-steps`` (default
  10,000, the paper's longest chain), median over several chains;

and report the ratio MH-time / CFM-time (the paper: up to ~2,000x). A chain that never gets there
within ``--max-steps`` gives a lower bound (">="). Writes ``fm_inverse_speed.json`` next to this file.

    python benchmarks/fm_inverse_speed.py --checkpoint runs/fm_inverse/<run>
    python benchmarks/fm_inverse_speed.py            # latest run's checkpoint, else trains a small model
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from paperlab.fm_inverse.checkpoint import load_checkpoint
from paperlab.fm_inverse.evaluate import seir_trajectory_errors
from paperlab.fm_inverse.experiment import SEIR_M_TRUE
from paperlab.fm_inverse.flow import sample_posterior
from paperlab.fm_inverse.mcmc import SEIRPosterior
from paperlab.fm_inverse.simulators import SEIRObservationModel, seir_simulate


def find_checkpoint(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    runs = sorted(Path("runs/fm_inverse").glob("*/checkpoint/model.json"), key=lambda p: p.stat().st_mtime)
    seir = [p.parent for p in runs if json.loads(p.read_text()).get("problem") == "seir"]
    if seir:
        return seir[-1]
    from paperlab.fm_inverse.experiment import reproduce

    print("no trained SEIR checkpoint found: training a small one (a few minutes) ...")
    run = reproduce(quick=True, out=Path("runs/fm_inverse/benchmark-model"), train={"steps": 4000},
                    test_truths=1, eval_N=[5], ref_cases=[], sbc_cases=18, sbc_N=[5])
    return run / "checkpoint"


def mh_time_to_error(post: SEIRPosterior, target: float, m_true: np.ndarray, rng: np.random.Generator,
                     max_steps: int, check_every: int) -> dict:
    """Run one MH chain for ``max_steps``; every ``check_every`` steps record the running mean's
    trajectory error (untimed). The chain *reaches* the target at the first check from which the
    error stays at or below it until the end (a single lucky crossing does not count)."""
    m = rng.uniform(size=6)
    lp = post(m)
    total, seconds, trace = np.zeros(6), 0.0, []
    for step in range(1, max_steps + 1):
        t0 = time.perf_counter()
        prop = m + 0.02 * rng.standard_normal(6)
        lp_prop = post(prop)
        if np.log(rng.uniform()) < lp_prop - lp:
            m, lp = prop, lp_prop
        total += m
        seconds += time.perf_counter() - t0
        if step % check_every == 0:
            err = seir_trajectory_errors((total / step)[None], m_true, 1)["posterior_mean_traj"]
            trace.append((step, seconds, err))
    reached = None
    for i in range(len(trace)):
        if all(e <= target for _, _, e in trace[i:]):
            reached = trace[i]
            break
    if reached is None:
        return {"reached": False, "steps": max_steps, "seconds": seconds, "error": trace[-1][2], "trace": trace}
    return {"reached": True, "steps": reached[0], "seconds": reached[1], "error": reached[2], "trace": trace}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=10_000)
    ap.add_argument("--check-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, meta = load_checkpoint(find_checkpoint(args.checkpoint))
    obs = SEIRObservationModel(**meta["observation_model"])
    m_true = np.asarray(SEIR_M_TRUE)
    rng = np.random.default_rng([args.seed, args.N])
    tokens, _ = seir_simulate(m_true[None], np.linspace(1, 3, args.N)[None], obs, rng)
    tokens = tokens[0]

    def cfm(seed, steps):
        return sample_posterior(model, tokens, args.samples, source=meta["source"], method=meta["ode_method"],
                                steps=steps, seed=seed)

    def timed(steps):
        cfm(0, steps)  # warm-up
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            samples = cfm(r + 1, steps)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), seir_trajectory_errors(samples, m_true, 500)

    # The ODE-step count trades speed for accuracy: sweep it, the checkpoint's default is the headline.
    sweep = {}
    for steps in sorted({4, 8, meta["ode_steps"]}):
        sec, err = timed(steps)
        sweep[steps] = {"seconds": sec, "posterior_mean_traj_error": err["posterior_mean_traj"], "mean_traj_error": err["mean"]}
    cfm_seconds = sweep[meta["ode_steps"]]["seconds"]
    e_cfm = {"posterior_mean_traj": sweep[meta["ode_steps"]]["posterior_mean_traj_error"],
             "mean": sweep[meta["ode_steps"]]["mean_traj_error"]}
    # "Comparable": within 10 % or 0.5 percentage points of CFM's error, whichever is looser.
    target = max(1.1 * e_cfm["posterior_mean_traj"], e_cfm["posterior_mean_traj"] + 0.005)

    post = SEIRPosterior(tokens, obs.sigma_I, obs.sigma_R, rtol=1e-3, atol=1e-6)   # the paper's solver settings
    chains = [mh_time_to_error(post, target, m_true, np.random.default_rng([args.seed, c]), args.max_steps,
                               args.check_every) for c in range(args.chains)]
    per_step = float(np.mean([c["seconds"] / c["steps"] for c in chains]))
    mh_seconds = float(np.median([c["seconds"] for c in chains]))
    all_reached = all(c["reached"] for c in chains)
    ratio = mh_seconds / cfm_seconds
    result = {
        "case": {"m_true": m_true, "N": args.N, "noise": meta["observation_model"]},
        "cfm": {"seconds_per_posterior": cfm_seconds, "samples": args.samples, "ode": [meta["ode_method"], meta["ode_steps"]],
                "posterior_mean_traj_error": e_cfm["posterior_mean_traj"], "mean_traj_error": e_cfm["mean"],
                "ode_step_sweep": sweep},
        "mh": {"target_error": target, "chains": [{k: v for k, v in c.items() if k != "trace"} for c in chains],
               "median_seconds_to_target": mh_seconds, "all_reached": all_reached, "seconds_per_step": per_step,
               "seconds_5k_steps": 5000 * per_step, "seconds_10k_steps": 10_000 * per_step},
        "ratio_time_to_comparable_error": ratio,
        "ratio_vs_mh_10k": 10_000 * per_step / cfm_seconds,
        # The cheapest ODE step count whose error is also within the target.
        "ratio_fastest_ode_within_target": mh_seconds / min(
            [v["seconds"] for v in sweep.values() if v["posterior_mean_traj_error"] <= target] or [cfm_seconds]),
        "ratio_is_lower_bound": not all_reached,
        "threads": torch.get_num_threads(),
    }
    from paperlab.core.runs import library_versions, to_jsonable

    result["versions"] = library_versions()
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(to_jsonable(result), indent=2))
    bound = ">=" if not all_reached else ""
    print(f"{'method':<40}{'seconds':>10}{'pm traj. error':>16}")
    for steps, v in sweep.items():
        label = f"CFM, {args.samples} samples, {steps} {meta['ode_method']} steps"
        print(f"{label:<40}{v['seconds']:>10.3f}{100 * v['posterior_mean_traj_error']:>15.2f}%")
    for i, c in enumerate(chains):
        label = f"MH chain {i} ({c['steps']} steps)"
        print(f"{label:<40}{c['seconds']:>10.2f}{100 * c['error']:>15.2f}%")
    print(f"{'MH 10k steps (paper)':<40}{10_000 * per_step:>10.2f}")
    print(f"speed ratio at comparable error: {bound}{ratio:.0f}x (fastest ODE setting within the target: "
          f"{bound}{result['ratio_fastest_ode_within_target']:.0f}x); vs a 10k-step MH chain: {result['ratio_vs_mh_10k']:.0f}x")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
