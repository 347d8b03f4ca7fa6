"""ReQuant: the outlier allocation, the budget, the detach steps; and (slow) ReQuant vs magnitude on a trained LM."""

import numpy as np
import pytest
import torch

from paperlab.requant.lm import tiny_target
from paperlab.requant.quantizers import Quantizer
from paperlab.requant.requant import ReQuantConfig, allocate, per_layer_budget, requant, select_per_layer


def test_allocation_temperature_zero_is_uniform_and_one_is_proportional_to_mass():
    sizes = {"a": 1000, "b": 3000, "c": 2000}
    density = {"a": 4.0, "b": 1.0, "c": 0.5}
    uni = allocate(density, sizes, 60, temperature=0.0)
    assert uni == {"a": 10, "b": 30, "c": 20}                    # the same ratio everywhere
    prop = allocate(density, sizes, 80, temperature=1.0)
    mass = {k: density[k] * sizes[k] for k in sizes}          # 4000 : 3000 : 1000
    assert prop == {k: round(80 * mass[k] / 8000) for k in sizes}
    sharp = allocate(density, sizes, 80, temperature=4.0)
    assert sharp["a"] > prop["a"] and sum(sharp.values()) == 80


def test_allocation_respects_caps_and_sums_exactly():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = rng.integers(1, 8)
        sizes = {str(i): int(rng.integers(10, 500)) for i in range(n)}
        density = {k: float(rng.exponential()) for k in sizes}
        cap = float(rng.uniform(0.01, 0.3))
        total = int(rng.integers(0, sum(sizes.values()) // 5))
        alloc = allocate(density, sizes, total, float(rng.uniform(0, 3)), max_layer_ratio=cap)
        assert sum(alloc.values()) == min(total, sum(int(np.floor(cap * s)) for s in sizes.values()))
        assert all(0 <= alloc[k] <= np.floor(cap * sizes[k]) for k in sizes)


def _tiny_model(seed=0):
    from paperlab.core.transformer import Transformer, TransformerConfig

    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=32))
    model.eval()
    return model


def test_requant_spends_exactly_its_budget_and_keeps_chosen_weights_exact():
    model = _tiny_model()
    target = tiny_target(model)
    seqs = torch.randint(0, 48, (4, 32), generator=torch.Generator().manual_seed(0))
    w0 = target.weights()
    cfg = ReQuantConfig(r_outlier=0.01, r_significant=0.01, steps=2, n_points=2)
    res = requant(target, Quantizer("rtn", 3, 16), seqs, cfg, w0=w0, sparse_dtype=torch.float32)
    total = sum(per_layer_budget({n: w.numel() for n, w in w0.items()}, 0.02).values())
    kinds = {"outlier": 0, "significant": 0}
    for n, ds in res.layers.items():
        for k, v in ds.kinds.items():
            kinds[k] += v
        w = ds.weight().reshape(-1)
        torch.testing.assert_close(w[ds.index], w0[n].reshape(-1)[ds.index])        # exact where sparse
        assert ds.index.unique().numel() == ds.index.numel()
    assert kinds["outlier"] + kinds["significant"] == total
    assert kinds["outlier"] == round(total / 2) == sum(res.allocation.values())
    assert [s["added"] for s in res.steps] == [kinds["significant"] // 2, kinds["significant"] - kinds["significant"] // 2]
    for n in w0:                                                           # the model is left untouched
        torch.testing.assert_close(target.layers[n].weight, w0[n])
    # outliers are each layer's largest |w|
    for n, ds in res.layers.items():
        k = res.allocation[n]
        if k:
            top = torch.topk(w0[n].abs().reshape(-1), k).indices
            assert set(top.tolist()) <= set(ds.index.tolist())
    # the detach steps lower the PQI estimate of the loss change
    assert res.steps[1]["pqi_before"] < res.steps[0]["pqi_before"]


def test_a_full_budget_restores_every_weight_and_the_original_logits():
    """ReQuant with a budget of 100% of the weights: the outliers the per-layer cap refuses go to the detach steps,
    which end up restoring every weight (fp32 corrections), so the dense-and-sparse model's logits are the
    original ones although its dense part is a 2-bit quantization."""
    from paperlab.requant.layers import convert, restore

    model = _tiny_model(1)
    target = tiny_target(model)
    seqs = torch.randint(0, 48, (3, 32), generator=torch.Generator().manual_seed(2))
    ids = torch.randint(0, 48, (2, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(ids)[0]
    cfg = ReQuantConfig(r_outlier=0.3, r_significant=0.7, steps=2, n_points=2, max_layer_ratio=0.1)
    res = requant(target, Quantizer("rtn", 2, 16), seqs, cfg, sparse_dtype=torch.float32)
    n = {name: w.numel() for name, w in target.weights().items()}
    assert res.allocation == {name: int(0.1 * k) for name, k in n.items()}          # capped at 10% a layer
    assert sum(s["added"] for s in res.steps) == sum(n.values()) - sum(res.allocation.values())
    for name, ds in res.layers.items():
        assert ds.index.numel() == n[name]
        assert not torch.allclose(ds.dense(), target.layers[name].weight, atol=1e-3)   # D is really low-bit
    originals = convert(model, res.layers)
    try:
        with torch.no_grad():
            torch.testing.assert_close(model(ids)[0], ref, rtol=1e-5, atol=1e-5)
    finally:
        restore(model, originals)


def test_a_killed_requant_resumes_from_its_last_scan(tmp_path):
    """With ``state_path`` every PQI scan's outcome is saved; a run cut after its first detach step redoes only
    the second step's scan (counted as forward passes of the model) and ends with the same layers."""
    model = _tiny_model(2)
    target = tiny_target(model)
    seqs = torch.randint(0, 48, (3, 32), generator=torch.Generator().manual_seed(4))
    q = Quantizer("rtn", 3, 16)
    cfg = ReQuantConfig(r_outlier=0.01, r_significant=0.02, steps=2, n_points=2)
    calls = []
    handle = model.blocks[0].register_forward_hook(lambda *a: calls.append(1))
    state = tmp_path / "state.pt"
    try:
        full = requant(target, q, seqs, cfg, state_path=state)
        n_full = len(calls)
        assert n_full == 3 * 2 * 3                                  # 3 scans x 2 points x 3 sequences
        saved = torch.load(state, weights_only=True)
        assert len(saved["steps"]) == 2 and saved["alloc"] == full.allocation
        saved["steps"] = saved["steps"][:1]                            # killed during the second step
        torch.save(saved, state)
        calls.clear()
        again = requant(target, q, seqs, cfg, state_path=state)
        assert len(calls) == 2 * 3                                     # only the second step's scan ran
        calls.clear()
        other = requant(target, q, seqs, ReQuantConfig(r_outlier=0.01, r_significant=0.02, steps=2, n_points=2,
                                                       temperature=0.0), state_path=state)
        assert len(calls) == n_full                                    # another setting: the state is not used
    finally:
        handle.remove()
    untimed = lambda steps: [{k: v for k, v in st.items() if k != "seconds_per_point"} for st in steps]  # noqa: E731
    assert again.allocation == full.allocation and untimed(again.steps) == untimed(full.steps)
    for n, ds in full.layers.items():
        assert torch.equal(again.layers[n].index, ds.index) and torch.equal(again.layers[n].value, ds.value)
    assert other.allocation != full.allocation


def test_magnitude_and_fisher_selections_take_the_top_of_each_matrix():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(10, 20, generator=g), "b": torch.rand(5, 40, generator=g)}
    masks = select_per_layer(scores, 0.05)
    for n, m in masks.items():
        k = round(0.05 * scores[n].numel())
        assert int(m.sum()) == k
        assert float(scores[n][m].min()) >= float(scores[n][~m].max())


@pytest.mark.slow
def test_requant_beats_or_matches_magnitude_on_a_trained_lm(tmp_path):
    """A small transformer trained on TinyShakespeare (shared trainer), 3-bit RTN: at equal bits, ReQuant's
    calibration-set loss and held-out loss are no worse than magnitude-selected dense-and-sparse."""
    from paperlab.core.lm_data import lm_datasets
    from paperlab.core.trainer import TrainConfig, train
    from paperlab.core.transformer import Transformer, TransformerConfig
    from paperlab.requant.layers import convert, restore
    from paperlab.requant.lm import windows
    from paperlab.requant.pqi import sequence_losses
    from paperlab.requant.requant import dense_and_sparse

    torch.set_num_threads(2)
    train_data, val_data, tok = lm_datasets("tinyshakespeare", "char")
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, d_model=64, n_layers=2, n_heads=2, d_ff=192,
                                          max_seq_len=64))
    train(model, train_data, val_data, TrainConfig(steps=300, batch_size=16, seq_len=64, lr=3e-3, warmup_steps=30,
                                                   eval_every=300, eval_tokens=2048, cpu=True), tmp_path / "tiny")
    model.eval()
    target = tiny_target(model)
    calib = windows(train_data.tokens, 64, 16)
    held = windows(val_data.tokens, 64, 32)
    w0 = target.weights()
    q = Quantizer("rtn", 3, 64)
    ratio = 0.01
    mag = select_per_layer({n: w.abs() for n, w in w0.items()}, ratio)
    layers = {"magnitude": {n: dense_and_sparse(n, w0[n], q, mag[n]) for n in w0},
              "requant": requant(target, q, calib, ReQuantConfig(ratio / 2, ratio / 2, n_points=4), w0=w0).layers}
    loss = {}
    for name, ls in layers.items():
        originals = convert(model, ls)
        loss[name] = (float(np.mean(sequence_losses(target, calib))), float(np.mean(sequence_losses(target, held))))
        restore(model, originals)
    base = float(np.mean(sequence_losses(target, held)))
    assert loss["requant"][0] <= loss["magnitude"][0] + 1e-4, loss
    assert loss["requant"][1] <= loss["magnitude"][1] + 2e-3, (loss, base)
