"""Sinkhorn pseudo-labels, confidence filtering and vMF prototypes on real small tensors."""

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from paperlab.tsv.prototypes import VMFPrototypes, soft_cross_entropy
from paperlab.tsv.sinkhorn import confidence_ce, select_confident, sinkhorn_pseudo_labels


def _log_p(b=64, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(b, 2, generator=g), -1)


def test_sinkhorn_sample_marginal_exact_after_paper_iterations():
    q = sinkhorn_pseudo_labels(_log_p(), torch.tensor([0.7, 0.3]), eps=0.05, n_iters=3)
    assert q.shape == (64, 2)
    assert torch.all(q >= 0)
    torch.testing.assert_close(q.sum(1), torch.ones(64), atol=1e-6, rtol=0)


def test_sinkhorn_converges_to_both_marginals_and_matches_pot():
    log_p, prior, eps = _log_p(), torch.tensor([0.7, 0.3]), 0.05
    q = sinkhorn_pseudo_labels(log_p, prior, eps=eps, n_iters=2000)
    b = log_p.shape[0]
    torch.testing.assert_close(q.sum(1), torch.ones(b), atol=1e-6, rtol=0)
    torch.testing.assert_close(q.sum(0) / b, prior, atol=1e-5, rtol=0)
    # POT: plan with row sums 1/B, column sums = prior, cost -log p, entropic regularisation eps
    plan = ot.sinkhorn(np.full(b, 1 / b), prior.double().numpy(), -log_p.double().numpy(), eps,
                       method="sinkhorn_log", numItermax=100000, stopThr=1e-12)
    np.testing.assert_allclose(q.double().numpy(), b * plan, atol=1e-4)


def test_sinkhorn_prior_moves_labels_towards_it():
    log_p = _log_p(200, seed=1)
    q_lo = sinkhorn_pseudo_labels(log_p, torch.tensor([0.9, 0.1]), n_iters=2000)
    q_hi = sinkhorn_pseudo_labels(log_p, torch.tensor([0.1, 0.9]), n_iters=2000)
    assert abs(float(q_lo[:, 1].mean()) - 0.1) < 1e-3 and abs(float(q_hi[:, 1].mean()) - 0.9) < 1e-3
    # the truthful mass goes to the samples the model finds most truthful
    top = log_p[:, 1].argsort(descending=True)[:20]
    assert float(q_lo[top, 1].mean()) > 0.5


def test_sinkhorn_rejects_bad_prior():
    with pytest.raises(ValueError):
        sinkhorn_pseudo_labels(_log_p(), torch.tensor([0.5, 0.6]))


def test_select_confident_is_class_balanced_and_lowest_ce():
    log_p = _log_p(100, seed=2)
    p = log_p.exp()
    prior = torch.tensor([0.75, 0.25])
    q = sinkhorn_pseudo_labels(log_p, prior)
    sel = select_confident(p, q, 16, prior)
    hard = p.argmax(1)
    assert len(sel) == 16 and len(set(sel.tolist())) == 16
    assert int((hard[sel] == 0).sum()) == 12 and int((hard[sel] == 1).sum()) == 4
    ce = confidence_ce(p, q)
    for c in (0, 1):
        chosen = [i for i in sel.tolist() if hard[i] == c]
        rest = [i for i in range(100) if hard[i] == c and i not in chosen]
        assert ce[chosen].max() <= ce[rest].min()


def test_select_confident_falls_back_to_global_topk():
    p = torch.tensor([[0.9, 0.1]] * 10 + [[0.2, 0.8]])  # only one sample predicted truthful
    q = p.clone()
    sel = select_confident(p, q, 6, torch.tensor([0.5, 0.5]))
    ce = confidence_ce(p, q)
    assert sorted(sel.tolist()) == sorted(torch.topk(ce, 6, largest=False).indices.tolist())


def test_prototypes_stay_unit_norm_under_ema():
    protos = VMFPrototypes(16, 2, tau=0.1, decay=0.99, seed=0)
    g = torch.Generator().manual_seed(0)
    for step in range(200):
        r = F.normalize(torch.randn(32, 16, generator=g) + 2.0, dim=1)
        y = torch.softmax(torch.randn(32, 2, generator=g), -1) if step % 2 else F.one_hot(
            torch.randint(0, 2, (32,), generator=g), 2).float()
        protos.ema_update(r, y)
        torch.testing.assert_close(protos.mu.norm(dim=1), torch.ones(2), atol=1e-6, rtol=0)


def test_ema_moves_towards_class_mean_and_keeps_absent_class():
    protos = VMFPrototypes(8, 2, decay=0.9, seed=3)
    target = F.normalize(torch.ones(1, 8), dim=1)
    before = protos.mu.clone()
    y = torch.tensor([[1.0, 0.0]] * 4)  # class 1 absent from the batch
    protos.ema_update(target.repeat(4, 1), y)
    assert float(protos.mu[0] @ target[0]) > float(before[0] @ target[0])
    torch.testing.assert_close(protos.mu[1], before[1])


def test_vmf_posterior_and_loss():
    r = F.normalize(torch.randn(5, 8), dim=1)
    protos = VMFPrototypes(8, 2, tau=0.1, seed=0)
    p = protos.probs(r)
    torch.testing.assert_close(p.sum(1), torch.ones(5))
    torch.testing.assert_close(p, torch.softmax(r @ protos.mu.T / 0.1, -1))
    y = F.one_hot(torch.tensor([0, 1, 1, 0, 1]), 2).float()
    torch.testing.assert_close(soft_cross_entropy(protos.log_probs(r), y),
                               F.nll_loss(protos.log_probs(r), y.argmax(1)))
    # prototypes at the class means score their own class higher
    rm = VMFPrototypes.from_class_means(torch.cat([target_cluster(0), target_cluster(1)]),
                                        torch.tensor([0] * 10 + [1] * 10))
    assert rm.probs(target_cluster(1))[:, 1].mean() > 0.5 > rm.probs(target_cluster(0))[:, 1].mean()


def target_cluster(c: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10 + c)
    centre = torch.zeros(8)
    centre[c] = 3.0
    return F.normalize(centre + 0.3 * torch.randn(10, 8, generator=g), dim=1)
