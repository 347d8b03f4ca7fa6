"""Mutual-information estimators of the L²M paper (Section 3 and Appendix).

Entropies from counts
---------------------
Grassberger's estimator of the entropy of a discrete distribution from ``N`` samples with
occupation counts ``n_i``::

    H = log N - (1/N) sum_i n_i G(n_i),
    G(n) = psi(n) + (-1)^n / 2 * (psi((n+1)/2) - psi(n/2))

(psi the digamma function). It is much less biased than the plug-in ``log N - (1/N) sum n_i log n_i``
when many symbols are seen only a few times. Its standard error is
``sqrt(sum_i (n_i/N) (log N - G(n_i))^2 - H^2) / sqrt(N)``.

Two-point mutual information between tokens ``d`` apart (Eq. 2 of the paper)::

    I(d) = 2 H(X_1) - H(X_1, X_{1+d})

with both entropies estimated by Grassberger from the unigram and the distance-``d`` pair counts.

Bipartite mutual information from a language model
--------------------------------------------------
A sample is a block of ``N`` consecutive tokens of a long document. ``X`` is its first ``L_x`` tokens,
``Y`` the following ``(r-1) L_x`` tokens (``r = L / L_x``; ``r = 2`` is the bipartite ``I_{L/2; L}``).
With ``q`` a model's autoregressive log-probabilities (a "scorer", see :class:`TokenScorer`):

*direct*::

    I_direct = mean_i [ log q(Y_i | X_i) ] - mean_i [ log q(Y_i) ]

``log q(Y|X)`` is read off one pass over the whole sample; ``log q(Y)`` comes from a pass over
``<start> + Y``. The start token makes the model believe ``Y`` opens a document, which biases the log-probs of
its first tokens; the paper replaces the summed log-prob of the first two tokens of ``Y`` by

    0.8 * (-H_2) + 0.2 * (model value),

with ``H_2`` the Grassberger entropy of the 2-gram distribution (``BOS bias correction``).

*vCLUB* (the variational CLUB upper-bound construction, with one mismatched ``Y`` per pair)::

    I_vCLUB = mean_i [ log q(Y_i | X_i) ] - mean_i [ log q(Y_pi(i) | X_i) ]

with ``pi`` a derangement of the samples (here ``pi(i) = i + 1 mod n``).

Error bars: ``std(per-sample values) / sqrt(n)``. Both estimators only need per-token log-probs, so the
same code serves a language model and a Gaussian with exact conditional densities
(:mod:`paperlab.l2m.gaussian`), which is how the estimator code is tested against exact MI.

Departure from the official code (stated): the official direct estimator takes ``log q(Y)`` from the
``Y`` of a *different* sample; here it is the sample's own ``Y`` (``pairing="same"``). Both have the
same expectation; the paired version has a much smaller variance, which matters with the few dozen
samples a CPU affords. ``pairing="shuffled"`` gives the official pairing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.special import digamma

# ----------------------------------------------------------------------------------------------
# Entropies from counts (Grassberger 2003)


def grassberger_G(n: np.ndarray | float) -> np.ndarray:
    """``G(n) = psi(n) + (-1)^n / 2 (psi((n+1)/2) - psi(n/2))`` for positive integer counts ``n``."""
    n = np.asarray(n, dtype=np.float64)
    sign = np.where(np.mod(n, 2) == 0, 1.0, -1.0)
    return digamma(n) + sign / 2.0 * (digamma((n + 1.0) / 2.0) - digamma(n / 2.0))


@dataclass
class Entropy:
    """An entropy estimate in nats with its standard error and the number of samples it used."""

    value: float
    err: float
    total: int


def grassberger_entropy(counts: Sequence[int] | np.ndarray) -> Entropy:
    """Grassberger entropy ``H = log N - (1/N) sum n_i G(n_i)`` (nats) of occupation ``counts``."""
    n = np.asarray(counts, dtype=np.float64)
    n = n[n > 0]
    if n.size == 0:
        raise ValueError("no counts")
    total = n.sum()
    g = grassberger_G(n)
    h = float(np.log(total) - (n * g).sum() / total)
    # Var of (log N - G(n)) under the empirical distribution, divided by N
    second = float((n / total * (np.log(total) - g) ** 2).sum())
    err = float(np.sqrt(max(second - h * h, 0.0) / total))
    return Entropy(h, err, int(total))


def plugin_entropy(counts: Sequence[int] | np.ndarray) -> float:
    """The maximum-likelihood ("naive") entropy ``log N - (1/N) sum n_i log n_i`` (nats)."""
    n = np.asarray(counts, dtype=np.float64)
    n = n[n > 0]
    total = n.sum()
    return float(np.log(total) - (n * np.log(n)).sum() / total)


def _as_arrays(seqs: Iterable[Sequence[int] | np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.int64) for s in seqs]


def ngram_counts(seqs: Iterable[Sequence[int] | np.ndarray], n: int) -> np.ndarray:
    """Occupation counts of the overlapping ``n``-grams of each sequence (``n`` = 1 or 2)."""
    if n not in (1, 2):
        raise ValueError("only 1-grams and 2-grams are supported")
    return distance_pair_counts(seqs, 1) if n == 2 else _unique_counts(np.concatenate(_as_arrays(seqs)))


def distance_pair_counts(seqs: Iterable[Sequence[int] | np.ndarray], d: int) -> np.ndarray:
    """Occupation counts of the token pairs ``(s_t, s_{t+d})`` inside each sequence."""
    seqs = [s for s in _as_arrays(seqs) if s.size > d]
    if not seqs:
        raise ValueError(f"every sequence is shorter than d + 1 = {d + 1}")
    # one shared base so that pairs from different sequences get the same key
    vocab = np.int64(max(int(s.max()) for s in seqs) + 1)
    keys = np.concatenate([s[:-d] * vocab + s[d:] for s in seqs])
    return _unique_counts(keys)


def _unique_counts(keys: np.ndarray) -> np.ndarray:
    return np.unique(keys, return_counts=True)[1]


@dataclass
class TwoPointMI:
    """``I(d) = 2 H_1 - H_pair(d)`` per distance, with standard errors (nats)."""

    distances: list[int]
    mi: list[float]
    err: list[float]
    h1: float
    h1_err: float
    h_pair: list[float]
    n_tokens: int


def two_point_mi(seqs: Iterable[Sequence[int] | np.ndarray], distances: Sequence[int]) -> TwoPointMI:
    """Two-point mutual information with Grassberger entropies, for each distance ``d``."""
    seqs = _as_arrays(seqs)
    h1 = grassberger_entropy(ngram_counts(seqs, 1))
    mi, err, hp = [], [], []
    for d in distances:
        hd = grassberger_entropy(distance_pair_counts(seqs, int(d)))
        hp.append(hd.value)
        # I(d) = 2 H_1 - H_pair(d)
        mi.append(2 * h1.value - hd.value)
        err.append(float(np.sqrt((2 * h1.err) ** 2 + hd.err ** 2)))
    return TwoPointMI([int(d) for d in distances], mi, err, h1.value, h1.err, hp, h1.total)


def entropy_convergence(seqs: Iterable[Sequence[int] | np.ndarray], n: int = 2, chunk: int = 2048,
                        min_tokens: int = 16384, seed: int = 0) -> list[dict]:
    """Grassberger ``n``-gram entropy on growing shares of the text: does the estimate still move?

    The sequences are cut into chunks of ``chunk`` tokens, shuffled (``seed``) and pooled in doubling
    numbers of tokens from ``min_tokens`` up to the whole text (always the last row). Each row:
    ``tokens`` (tokens counted), ``h`` and ``err`` (nats), ``delta`` (change from the previous row, i.e.
    per doubling of the text). An entropy of a large alphabet is underestimated on little text, so ``h``
    rises with ``tokens`` until the text covers the distribution; a ``delta`` near 0 means converged.
    """
    seqs = _as_arrays(seqs)
    chunks = [s[i: i + chunk] for s in seqs for i in range(0, len(s), chunk) if len(s[i: i + chunk]) > n]
    order = np.random.default_rng(seed).permutation(len(chunks))
    chunks = [chunks[i] for i in order]
    sizes = np.cumsum([len(c) for c in chunks])
    total = int(sizes[-1]) if len(sizes) else 0
    targets = [t for t in (min_tokens * 2 ** k for k in range(64)) if t < total] + [total]
    rows, prev = [], None
    for t in targets:
        k = int(np.searchsorted(sizes, t) + 1)
        part = chunks[:k]
        h = grassberger_entropy(ngram_counts(part, n))
        rows.append(dict(tokens=int(sum(len(c) for c in part)), h=h.value, err=h.err,
                         delta=None if prev is None else h.value - prev))
        prev = h.value
    return rows


# ----------------------------------------------------------------------------------------------
# Scorers: anything that gives autoregressive per-token log-probs


class TokenScorer(Protocol):
    """``token_logprobs(seqs[B, T]) -> [B, T]``: ``log q(s_j | <start>, s_<j)`` for every position ``j``.

    Implementations: :class:`paperlab.l2m.lm.LMScorer` (a causal LM, ``<start>`` = its BOS token),
    :class:`paperlab.l2m.lm.VLLMScorer` (vLLM ``prompt_logprobs``, GPU users) and
    :class:`paperlab.l2m.gaussian.GaussianScorer` (exact conditional densities of a Gaussian).
    """

    def token_logprobs(self, seqs: np.ndarray) -> np.ndarray: ...


@dataclass
class BipartiteLogProbs:
    """The raw per-token log-probs every bipartite estimate is computed from.

    ``joint[i]``            log q(s_j | s_<j) over the whole sample ``i`` (``N`` tokens);
    ``marginal[Lx][i]``     log q of ``Y = s[Lx : r_max Lx]`` of sample ``m(i)`` read from ``<start> + Y``;
    ``club[Lx][i]``         log q of ``Y`` of sample ``pi(i)`` after ``X`` of sample ``i``.
    ``m`` is the identity (``pairing="same"``) or ``pi`` (``"shuffled"``, the official pairing).
    """

    split_points: list[int]
    max_ratio: int
    joint: np.ndarray
    marginal: dict[int, np.ndarray] = field(default_factory=dict)
    club: dict[int, np.ndarray] = field(default_factory=dict)
    pairing: str = "same"

    @property
    def n(self) -> int:
        return self.joint.shape[0]

    def save(self, path) -> None:
        arrays = {"joint": self.joint, "split_points": np.asarray(self.split_points),
                  "max_ratio": np.asarray(self.max_ratio), "pairing": np.asarray(self.pairing)}
        arrays.update({f"marginal_{k}": v for k, v in self.marginal.items()})
        arrays.update({f"club_{k}": v for k, v in self.club.items()})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path) -> BipartiteLogProbs:
        z = np.load(path)
        splits = [int(x) for x in z["split_points"]]
        return cls(splits, int(z["max_ratio"]), z["joint"],
                   {k: z[f"marginal_{k}"] for k in splits}, {k: z[f"club_{k}"] for k in splits},
                   str(z["pairing"]))


def derangement(n: int) -> np.ndarray:
    """``pi(i) = i + 1 mod n``: every sample is paired with another one."""
    if n < 2:
        raise ValueError("vCLUB needs at least 2 samples")
    return (np.arange(n) + 1) % n


def collect_logprobs(scorer: TokenScorer, samples: np.ndarray, split_points: Sequence[int], max_ratio: int = 2,
                     batch_size: int = 8, pairing: str = "same", vclub: bool = True,
                     on_batch: Callable[[int], None] | None = None) -> BipartiteLogProbs:
    """Run ``scorer`` on every sequence the direct and vCLUB estimators need.

    ``samples[n, N]`` with ``N >= max_ratio * max(split_points)``. Per batch of samples: one pass over the
    whole samples, then for every split ``Lx`` one pass over ``<start> + Y`` and one over ``X_i + Y_pi(i)``.
    ``on_batch(n_done)`` reports progress.
    """
    samples = np.asarray(samples)
    n, N = samples.shape
    split_points = sorted(int(s) for s in split_points)
    if max_ratio < 2:
        raise ValueError("max_ratio must be >= 2")
    if max_ratio * split_points[-1] > N:
        raise ValueError(f"samples have {N} tokens, fewer than max_ratio * max split = {max_ratio * split_points[-1]}")
    if pairing not in ("same", "shuffled"):
        raise ValueError("pairing must be 'same' or 'shuffled'")
    pi = derangement(n)
    m = np.arange(n) if pairing == "same" else pi
    N_used = max_ratio * split_points[-1]
    joint = np.zeros((n, N_used))
    marginal = {k: np.zeros((n, (max_ratio - 1) * k)) for k in split_points}
    club = {k: np.zeros((n, (max_ratio - 1) * k)) for k in split_points} if vclub else {}
    for b0 in range(0, n, batch_size):
        idx = np.arange(b0, min(b0 + batch_size, n))
        joint[idx] = scorer.token_logprobs(samples[idx, :N_used])
        for k in split_points:
            y_end = max_ratio * k
            # log q(Y) from <start> + Y
            marginal[k][idx] = scorer.token_logprobs(samples[m[idx], k:y_end])
            if vclub:
                # log q(Y_pi(i) | X_i): X of sample i followed by Y of sample pi(i)
                mixed = np.concatenate([samples[idx, :k], samples[pi[idx], k:y_end]], axis=1)
                club[k][idx] = scorer.token_logprobs(mixed)[:, k:]
        if on_batch is not None:
            on_batch(int(idx[-1]) + 1)
    return BipartiteLogProbs(split_points, max_ratio, joint, marginal, club, pairing)


# ----------------------------------------------------------------------------------------------
# The estimators


def bos_corrected(marginal: np.ndarray, h2: float, weight: float = 0.8) -> np.ndarray:
    """Replace the summed log-prob of the first two ``Y`` tokens by ``weight (-H_2) + (1-weight) model``."""
    out = np.array(marginal, dtype=np.float64, copy=True)
    first_two = out[:, :2].sum(1)
    out[:, 0] = 0.0
    out[:, 1] = weight * (-h2) + (1.0 - weight) * first_two
    return out


def direct_mi_samples(lp: BipartiteLogProbs, split: int, ratio: int = 2, h2: float | None = None,
                      weight: float = 0.8) -> np.ndarray:
    """Per-sample ``log q(Y|X) - log q(Y)`` (nats) at split ``Lx = split``; BOS-corrected if ``h2`` given."""
    y_end = ratio * split
    # log q(Y | X): the joint pass read at positions Lx .. r Lx - 1
    cond = lp.joint[:, split:y_end].sum(1)
    marg = lp.marginal[split][:, : (ratio - 1) * split]
    if h2 is not None:
        marg = bos_corrected(marg, h2, weight)
    return cond - marg.sum(1)


def vclub_mi_samples(lp: BipartiteLogProbs, split: int, ratio: int = 2) -> np.ndarray:
    """Per-sample ``log q(Y_i|X_i) - log q(Y_pi(i)|X_i)`` (nats) at split ``Lx = split``."""
    if not lp.club:
        raise ValueError("the log-probs were collected without vCLUB passes")
    y_end = ratio * split
    return lp.joint[:, split:y_end].sum(1) - lp.club[split][:, : (ratio - 1) * split].sum(1)


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error ``std(ddof=1)/sqrt(n)``."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


@dataclass
class BipartiteMI:
    """Bipartite MI per split for one ratio ``r = L / L_x``: means, standard errors and per-sample values."""

    ratio: int
    split_points: list[int]
    direct: list[float]
    direct_err: list[float]
    vclub: list[float] | None
    vclub_err: list[float] | None
    direct_samples: np.ndarray          # [n, n_splits]
    vclub_samples: np.ndarray | None

    @property
    def lengths(self) -> list[int]:
        """``L = r L_x``."""
        return [self.ratio * k for k in self.split_points]


def bipartite_mi(lp: BipartiteLogProbs, ratio: int = 2, h2: float | None = None, h2_err: float = 0.0,
                 weight: float = 0.8) -> BipartiteMI:
    """Direct and vCLUB bipartite MI at every split of ``lp`` for ``r = ratio``.

    The BOS correction's uncertainty (``weight * h2_err``) is shared by all samples, so it is added in
    quadrature to the direct estimator's standard error.
    """
    if ratio > lp.max_ratio:
        raise ValueError(f"ratio {ratio} > the collected max_ratio {lp.max_ratio}")
    d = np.stack([direct_mi_samples(lp, k, ratio, h2, weight) for k in lp.split_points], axis=1)
    dm = [mean_sem(d[:, j]) for j in range(d.shape[1])]
    corr = weight * h2_err if h2 is not None else 0.0
    direct_err = [float(np.hypot(e, corr)) for _, e in dm]
    v = vm = None
    if lp.club:
        v = np.stack([vclub_mi_samples(lp, k, ratio) for k in lp.split_points], axis=1)
        vm = [mean_sem(v[:, j]) for j in range(v.shape[1])]
    return BipartiteMI(ratio, list(lp.split_points), [m for m, _ in dm], direct_err,
                       [m for m, _ in vm] if vm else None, [e for _, e in vm] if vm else None, d, v)
