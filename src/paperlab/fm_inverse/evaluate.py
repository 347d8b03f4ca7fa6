"""Evaluation: trajectory errors, distances to a reference posterior, calibration, corner plots.

- **Relative trajectory error** (the paper's metric): for a posterior sample :math:`m^{(s)}`,
  :math:`\\|Y(m^{(s)}) - Y(m^*)\\|_F / \\|Y(m^*)\\|_F` with :math:`Y` the full 4-compartment SEIR
  trajectory on 50 points over :math:`[0, 4]` (Darcy: the pressure field :math:`u`). We report
  the mean over posterior samples (the paper's CFM number) and the error of the posterior mean
  (the paper's MCMC number).
- **C2ST**: accuracy of a classifier telling samples of two posteriors apart (0.5 = identical),
  5-fold cross-validated MLP on standardised samples; **MMD** with an RBF kernel (median
  bandwidth); **marginal Wasserstein-1** distances.
- **Coverage / SBC**: for :math:`(m^*, d)` from the joint, the rank of :math:`m^*_k` among posterior
  samples is uniform when the posterior is calibrated; equivalently the central
  :math:`(1-\\alpha)` credible interval covers :math:`m^*_k` with frequency :math:`1-\\alpha`.
  The prior itself passes every per-parameter check (it is calibrated, only uninformative), so we
  also rank a *data-dependent* test quantity, the log-likelihood :math:`\\log p(d \\mid m)`
  (Modrak et al. 2023, "Simulation-based calibration checking for Bayesian computation: the choice
  of test quantities shapes sensitivity"): a posterior that ignores the data ranks the truth's
  likelihood near the top.
"""

from __future__ import annotations

import numpy as np

from paperlab.fm_inverse.simulators import SEIR_TRAJ_T, seir_solve


def seir_trajectories(m: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``(S, 4, 50)`` trajectories on the paper's grid, and validity."""
    return seir_solve(np.atleast_2d(m), SEIR_TRAJ_T, chunk=chunk)


def relative_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """:math:`\\|Y - Y^*\\|_F / \\|Y^*\\|_F` for each leading index of ``pred``."""
    axes = tuple(range(1, pred.ndim))
    return np.sqrt(((pred - true[None]) ** 2).sum(axes)) / np.sqrt((true ** 2).sum())


def seir_trajectory_errors(samples: np.ndarray, m_true: np.ndarray, max_samples: int = 500) -> dict:
    """The paper's trajectory errors for SEIR posterior samples ``(S, 6)`` against ``m_true``."""
    y_true, _ = seir_trajectories(m_true[None])
    s = samples[:max_samples]
    y, valid = seir_trajectories(s)
    errs = relative_error(y[valid], y_true[0])
    y_mean, ok = seir_trajectories(samples.mean(0, keepdims=True))
    return {"mean": float(errs.mean()) if errs.size else float("nan"),
            "std": float(errs.std()) if errs.size else float("nan"),
            "posterior_mean_traj": float(relative_error(y_mean, y_true[0])[0]) if ok[0] else float("nan"),
            "diverged": int((~valid).sum()), "n": int(s.shape[0])}


def seir_identifiable(m: np.ndarray) -> np.ndarray:
    """The identifiable combinations :math:`(\\beta_1, \\alpha, \\gamma_r + \\gamma_{d1}, \\beta_2, \\gamma_r + \\gamma_{d2})`.

    :math:`\\gamma_r, \\gamma_{d1}, \\gamma_{d2}` enter only through these two sums, so one direction
    of parameter space is exactly unidentifiable.
    """
    return np.stack([m[..., 0], m[..., 1], m[..., 2] + m[..., 3], m[..., 4], m[..., 2] + m[..., 5]], axis=-1)


SEIR_IDENTIFIABLE_NAMES = ("beta1", "alpha", "gamma_r+gamma_d1", "beta2", "gamma_r+gamma_d2")


def c2st_test(x: np.ndarray, y: np.ndarray, seed: int = 0, n: int = 1000, folds: int = 5,
              permutations: int = 0) -> dict:
    """Classifier two-sample test: can an MLP tell samples ``x`` from samples ``y``?

    ``n`` samples of each (or fewer) are standardised by ``x``'s moments and classified by sbi's
    C2ST classifier (an MLP with two hidden layers of ``10 d`` units, early stopping on 10 %) with
    ``folds``-fold cross-validation; every sample is predicted once, out of fold. Returns

    - ``accuracy`` (0.5: indistinguishable; 1: disjoint) and ``estimate``, its Wilson interval over
      the ``2k`` out-of-fold predictions;
    - ``null_95``: the central 95 % of the accuracy when both sets come from one distribution, from
      ``Binomial(2k, 1/2) / 2k`` (each out-of-fold prediction is a fair coin under the null);
    - with ``permutations > 0``, the permutation null: the accuracies after shuffling the labels
      (the classifier refitted each time), and the permutation p-value of the observed accuracy.

    The Bayes-optimal accuracy is :math:`\\tfrac12 + \\tfrac12 \\mathrm{TV}(p, q)`, so an accuracy
    of 0.6 means a total-variation distance of at least 0.2 (as far as this classifier can see).
    """
    from scipy.stats import binom
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    from paperlab.core.stats import wilson

    rng = np.random.default_rng(seed)
    x = x[rng.permutation(len(x))[:n]]
    y = y[rng.permutation(len(y))[:n]]
    k = min(len(x), len(y))
    x, y = x[:k], y[:k]
    mu, sd = x.mean(0), x.std(0) + 1e-9
    data = (np.concatenate([x, y]) - mu) / sd
    target = np.r_[np.zeros(k), np.ones(k)]
    d = data.shape[1]

    def accuracy(labels: np.ndarray) -> tuple[int, float]:
        # The classifier of sbi's C2ST (two hidden layers of 10 d units), stopped early on a 10 % split.
        clf = MLPClassifier(hidden_layer_sizes=(10 * d, 10 * d), max_iter=300, early_stopping=True,
                            n_iter_no_change=10, random_state=seed)
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        with threadpool_limits(1):  # tiny matrices: BLAS threads only add contention
            pred = cross_val_predict(clf, data, labels, cv=cv)
        correct = int((pred == labels).sum())
        return correct, correct / labels.size

    correct, acc = accuracy(target)
    total = 2 * k
    out = {"accuracy": acc, "correct": correct, "total": total,
           "estimate": wilson(correct, total),
           "null_95": [float(binom.ppf(0.025, total, 0.5) / total), float(binom.ppf(0.975, total, 0.5) / total)],
           "classifier": f"MLP (10d, 10d), {folds}-fold out-of-fold predictions, {k} + {k} samples"}
    if permutations > 0:
        null = [accuracy(rng.permutation(target))[1] for _ in range(permutations)]
        out["permutation_null"] = null
        out["permutation_p"] = float((1 + sum(a >= acc for a in null)) / (1 + permutations))
    return out


def c2st(x: np.ndarray, y: np.ndarray, seed: int = 0, n: int = 1000, folds: int = 5) -> float:
    """C2ST accuracy only (see :func:`c2st_test`)."""
    return float(c2st_test(x, y, seed=seed, n=n, folds=folds)["accuracy"])


def moment_comparison(x: np.ndarray, ref: np.ndarray, names, n_boot: int = 1000, seed: int = 0) -> dict:
    """Per parameter: the mean shift in reference standard deviations and the ratio of standard deviations.

    :math:`(\\bar x_k - \\bar r_k) / s_{r,k}` and :math:`s_{x,k} / s_{r,k}`, each with a percentile
    bootstrap interval resampling both sample sets (``ref`` should be nearly independent draws, e.g. an
    MCMC chain thinned by its autocorrelation time). Returns ``{name: {"mean_shift": Estimate,
    "std_ratio": Estimate, "mean_ratio": float}}``.
    """
    from paperlab.core.stats import Estimate

    rng = np.random.default_rng(seed)
    ix = rng.integers(0, len(x), size=(n_boot, len(x)))
    ir = rng.integers(0, len(ref), size=(n_boot, len(ref)))
    out = {}
    for j, name in enumerate(names):
        a, r = x[:, j], ref[:, j]
        ba, br = a[ix], r[ir]
        shift_b = (ba.mean(1) - br.mean(1)) / br.std(1)
        ratio_b = ba.std(1) / br.std(1)
        shift, ratio = (a.mean() - r.mean()) / r.std(), a.std() / r.std()
        lo_s, hi_s = np.quantile(shift_b, [0.025, 0.975])
        lo_r, hi_r = np.quantile(ratio_b, [0.025, 0.975])
        method = f"percentile bootstrap over both sample sets ({n_boot} resamples; {len(a)} vs {len(r)} draws)"
        out[name] = {"mean_shift": Estimate(float(shift), float(lo_s), float(hi_s), len(r), "mean shift / reference std, " + method),
                     "std_ratio": Estimate(float(ratio), float(lo_r), float(hi_r), len(r), "std ratio, " + method),
                     "mean_ratio": float(a.mean() / r.mean()) if r.mean() != 0 else float("nan")}
    return out


def mmd_rbf(x: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> float:
    """Unbiased squared MMD with an RBF kernel, bandwidth the median pairwise distance."""
    rng = np.random.default_rng(seed)
    x = x[rng.permutation(len(x))[:n]]
    y = y[rng.permutation(len(y))[:n]]
    z = np.concatenate([x, y])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    h = np.median(d2[np.triu_indices_from(d2, 1)])
    K = np.exp(-d2 / h)
    a, b = len(x), len(y)
    kxx = (K[:a, :a].sum() - np.trace(K[:a, :a])) / (a * (a - 1))
    kyy = (K[a:, a:].sum() - np.trace(K[a:, a:])) / (b * (b - 1))
    return float(kxx + kyy - 2 * K[:a, a:].mean())


def marginal_w1(x: np.ndarray, y: np.ndarray) -> list[float]:
    """Wasserstein-1 distance between each pair of marginals."""
    from scipy.stats import wasserstein_distance

    return [float(wasserstein_distance(x[:, k], y[:, k])) for k in range(x.shape[1])]


def sbc_ranks(samples: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """``(K, P)`` ranks of ``truths`` ``(K, P)`` among ``samples`` ``(K, S, P)``, in ``0..S``."""
    return (samples < truths[:, None, :]).sum(1)


def normalised_ranks(ranks: np.ndarray, S: int, seed: int = 0) -> np.ndarray:
    """``(rank + U) / (S + 1)`` with ``U ~ U[0, 1)``: exactly ``U[0, 1]`` for a calibrated posterior
    (the jitter breaks the ties of the discrete rank)."""
    return (ranks + np.random.default_rng(seed).random(ranks.shape)) / (S + 1)


def sbc_uniformity(u: np.ndarray) -> list[float]:
    """Kolmogorov-Smirnov p-value of each column of normalised ranks ``u`` ``(K, P)`` against ``U[0, 1]``."""
    from scipy.stats import kstest

    u = np.atleast_2d(u.T).T
    return [float(kstest(u[:, j], "uniform").pvalue) for j in range(u.shape[1])]


def coverage(samples: np.ndarray, truths: np.ndarray, levels=(0.5, 0.8, 0.9, 0.95)) -> dict:
    """Empirical coverage of central credible intervals, per level (mean over parameters and per parameter)."""
    out = {"levels": list(levels), "empirical": [], "per_param": []}
    for lv in levels:
        lo = np.quantile(samples, (1 - lv) / 2, axis=1)
        hi = np.quantile(samples, 1 - (1 - lv) / 2, axis=1)
        inside = (truths >= lo) & (truths <= hi)                 # (K, P)
        out["per_param"].append(inside.mean(0).tolist())
        out["empirical"].append(float(inside.mean()))
    k = truths.shape[0]
    # 95 % Wilson interval of each level's coverage with the K cases as units (a case's parameters are not
    # independent, so they are pooled, not counted as K * P trials).
    from paperlab.core.stats import wilson

    out["cases"] = int(k)
    out["wilson_95"] = [[w.lo, w.hi] for w in (wilson(e * k, k) for e in out["empirical"])]
    return out


def corner_plot(sets: dict[str, np.ndarray], names: list[str] | tuple[str, ...], truth: np.ndarray | None = None,
                title: str = "", max_points: int = 2000):
    """A small corner plot (histograms on the diagonal, scatter below) of several sample sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = len(names)
    fig, axes = plt.subplots(P, P, figsize=(1.7 * P, 1.7 * P))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    stacked = np.concatenate([s[:max_points] for s in sets.values()])
    lo, hi = np.quantile(stacked, 0.005, axis=0), np.quantile(stacked, 0.995, axis=0)
    pad = 0.05 * (hi - lo + 1e-12)
    lo, hi = lo - pad, hi + pad
    for (label, s), c in zip(sets.items(), colours, strict=False):
        s = s[:max_points]
        for i in range(P):
            for j in range(i + 1):
                ax = axes[i, j]
                if i == j:
                    ax.hist(s[:, i], bins=30, range=(lo[i], hi[i]), density=True, histtype="step", color=c, label=label)
                else:
                    ax.scatter(s[:, j], s[:, i], s=1, alpha=0.25, color=c, rasterized=True)
    for i in range(P):
        for j in range(P):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            ax.set_xlim(lo[j], hi[j])
            if i != j:
                ax.set_ylim(lo[i], hi[i])
            else:
                ax.set_yticks([])
            if truth is not None:
                ax.axvline(truth[j], color="k", lw=0.8)
                if i != j:
                    ax.axhline(truth[i], color="k", lw=0.8)
            ax.tick_params(labelsize=6)
            if i < P - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel(names[j], fontsize=7)
            if j > 0 and i != j:
                ax.set_yticklabels([])
            elif j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.08, hspace=0.08)
    return fig
