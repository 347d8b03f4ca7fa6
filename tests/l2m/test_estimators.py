"""Grassberger entropies, two-point MI and the bipartite estimators on real small inputs."""

import numpy as np
import pytest

from paperlab.l2m.estimators import (
    BipartiteLogProbs,
    bipartite_mi,
    bos_corrected,
    collect_logprobs,
    derangement,
    distance_pair_counts,
    grassberger_entropy,
    grassberger_G,
    ngram_counts,
    plugin_entropy,
    two_point_mi,
)

EULER = 0.5772156649015329


def test_grassberger_G_closed_form_values_and_recurrence():
    # G(1) = -gamma - ln 2, G(2) = 2 - gamma - ln 2, G(2n+1) = G(2n), G(2n+2) = G(2n) + 2/(2n+1)
    assert grassberger_G(1) == pytest.approx(-EULER - np.log(2), abs=1e-12)
    assert grassberger_G(2) == pytest.approx(2 - EULER - np.log(2), abs=1e-12)
    for n in range(1, 30):
        assert grassberger_G(2 * n + 1) == pytest.approx(grassberger_G(2 * n), abs=1e-10)
        assert grassberger_G(2 * n + 2) == pytest.approx(grassberger_G(2 * n) + 2 / (2 * n + 1), abs=1e-10)
    # G(n) -> log n for large n
    assert grassberger_G(10 ** 6) == pytest.approx(np.log(10 ** 6), abs=1e-5)


def test_grassberger_entropy_closed_form_equal_counts():
    # K symbols seen twice each: H = log(2K) - G(2) = log K + 2 ln 2 + gamma - 2
    K = 37
    h = grassberger_entropy([2] * K)
    assert h.value == pytest.approx(np.log(K) + 2 * np.log(2) + EULER - 2, abs=1e-12)
    assert h.err == pytest.approx(0.0, abs=1e-6)       # every symbol contributes the same term
    assert h.total == 2 * K


def test_grassberger_less_biased_than_plugin_when_undersampled():
    rng = np.random.default_rng(0)
    K, n = 2000, 3000                                  # 1.5 samples per symbol
    errs_g, errs_p = [], []
    for _ in range(5):
        counts = np.bincount(rng.integers(0, K, n), minlength=K)
        errs_g.append(grassberger_entropy(counts).value - np.log(K))
        errs_p.append(plugin_entropy(counts) - np.log(K))
    assert abs(np.mean(errs_g)) < 0.5 * abs(np.mean(errs_p))
    assert np.mean(errs_p) < 0                         # the plug-in estimator is biased low


def _binary_markov(n, p, seed):
    rng = np.random.default_rng(seed)
    flips = rng.random(n) < p
    return np.cumsum(flips) % 2


def test_two_point_mi_matches_binary_markov_chain():
    # symmetric binary chain, flip prob p: P(same after d) = (1 + (1-2p)^d)/2, I(d) = ln 2 - H_b(.)
    p = 0.1
    seq = _binary_markov(200_000, p, 0)
    res = two_point_mi([seq], [1, 2, 4, 8, 32])
    for d, mi, err in zip(res.distances, res.mi, res.err, strict=True):
        q = (1 + (1 - 2 * p) ** d) / 2
        exact = np.log(2) + q * np.log(q) + (1 - q) * np.log(1 - q)
        assert abs(mi - exact) < 4 * err + 2e-4, (d, mi, exact, err)
    assert res.mi[0] > res.mi[2] > res.mi[4]           # decays with distance


def test_pair_counts_stay_inside_each_sequence():
    a, b = np.array([0, 1, 2]), np.array([5, 6])
    assert distance_pair_counts([a, b], 1).sum() == 3          # (0,1) (1,2) (5,6): no (2,5)
    assert sorted(ngram_counts([a, b], 1).tolist()) == [1] * 5
    assert distance_pair_counts([a, b], 2).sum() == 1


class TableScorer:
    """Log-probs of a first-order Markov chain with transition matrix P and stationary start: exact q."""

    def __init__(self, P, pi0):
        self.logP, self.logpi = np.log(P), np.log(pi0)

    def token_logprobs(self, seqs):
        seqs = np.asarray(seqs)
        out = np.empty(seqs.shape)
        out[:, 0] = self.logpi[seqs[:, 0]]
        out[:, 1:] = self.logP[seqs[:, :-1], seqs[:, 1:]]
        return out


def test_direct_estimator_recovers_markov_chain_bipartite_mi():
    # For a stationary first-order chain, I(X_{1:k}; X_{k+1:2k}) = I(x_k; x_{k+1}) for every k
    p = 0.1
    P = np.array([[1 - p, p], [p, 1 - p]])
    seqs = np.stack([_binary_markov(64, p, s) ^ (s % 2) for s in range(3000)])
    lp = collect_logprobs(TableScorer(P, np.array([0.5, 0.5])), seqs, [2, 4, 8, 16, 32], 2, batch_size=1000)
    est = bipartite_mi(lp, 2)
    exact = np.log(2) + (1 - p) * np.log(1 - p) + p * np.log(p)
    for m, e in zip(est.direct, est.direct_err, strict=True):
        assert abs(m - exact) < 4 * e
    # vCLUB is an upper bound with exact densities
    assert all(v > exact - 4 * e for v, e in zip(est.vclub, est.vclub_err, strict=True))


def test_bos_correction_replaces_first_two_tokens():
    m = np.array([[-10.0, -6.0, -1.0, -2.0]])
    c = bos_corrected(m, h2=8.0, weight=0.8)
    assert c[0, 0] == 0.0
    assert c[0, 1] == pytest.approx(0.8 * -8.0 + 0.2 * -16.0)
    assert c[0, 2:].tolist() == [-1.0, -2.0]
    assert m[0, 0] == -10.0                         # input untouched


def test_logprobs_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    lp = BipartiteLogProbs([2, 4], 2, rng.normal(size=(3, 8)), {2: rng.normal(size=(3, 2)), 4: rng.normal(size=(3, 4))},
                           {2: rng.normal(size=(3, 2)), 4: rng.normal(size=(3, 4))})
    lp.save(tmp_path / "lp.npz")
    back = BipartiteLogProbs.load(tmp_path / "lp.npz")
    assert np.array_equal(back.joint, lp.joint) and np.array_equal(back.club[4], lp.club[4])
    assert bipartite_mi(back, 2).direct == bipartite_mi(lp, 2).direct


def test_derangement_has_no_fixed_point():
    d = derangement(7)
    assert sorted(d.tolist()) == list(range(7)) and not (d == np.arange(7)).any()


def test_entropy_convergence_rises_to_the_full_text_estimate():
    from paperlab.l2m.estimators import entropy_convergence

    rng = np.random.default_rng(0)
    # Zipf-like tokens over a large alphabet: the 2-gram entropy is underestimated on little text
    p = 1.0 / np.arange(1, 3001)
    seqs = [rng.choice(3000, size=40_000, p=p / p.sum()) for _ in range(4)]
    rows = entropy_convergence(seqs, 2, chunk=1000, min_tokens=5000, seed=0)
    assert [r["tokens"] for r in rows] == sorted(r["tokens"] for r in rows) and rows[-1]["tokens"] == 160_000
    assert rows[-1]["h"] == pytest.approx(grassberger_entropy(ngram_counts(seqs, 2)).value, rel=1e-3)
    assert rows[0]["delta"] is None and all(r["delta"] > 0 for r in rows[1:])       # still rising
    assert rows[-1]["h"] - rows[0]["h"] > 0.2
