"""Training regimes: the checkpoint schedule, the data switch at the onset, and branching at the onset equals
training the regime from scratch."""

import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from paperlab.core.lm_data import TokenData
from paperlab.core.trainer import TrainConfig
from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.priming.grammar import CorpusSpec, Grammar, mix_stream
from paperlab.priming.regimes import RegimeData, checkpoint_steps, phase_mixes, train_regime

G = Grammar()


@given(half=st.integers(2, 5000), pre=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5),
       post=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=8))
def test_checkpoint_steps(half, pre, post):
    steps = 2 * half
    s = checkpoint_steps(steps, tuple(pre), tuple(post))
    assert s == sorted(set(s)) and half in s and 1 <= s[0] and s[-1] <= steps
    if 1.0 in post:
        assert s[-1] == steps
    assert all(x < half for x in s[: s.index(half)]) and all(x > half for x in s[s.index(half) + 1:])


def _streams():
    rng = random.Random(0)
    pools = {lang: G.documents([lang], 4000, CorpusSpec(), rng) for lang in ("en", "sim")}
    mk = lambda mix: TokenData(torch.tensor(mix_stream(pools, mix, 8000, random.Random(1))))  # noqa: E731
    return {"en": mk({"en": 1.0}), "sim": mk({"sim": 1.0}), "mix": mk({"en": 0.5, "sim": 0.5})}


def _langs(x: torch.Tensor) -> set:
    return {G.language_of(G.vocab[i]) for i in x.reshape(-1).tolist()} - {None}


def test_data_switches_at_the_onset():
    s = _streams()
    assert phase_mixes("sequential", "en", "sim") == ({"en": 1.0}, {"sim": 1.0})
    assert phase_mixes("simultaneous", "en", "sim") == ({"en": 1.0}, {"en": 0.5, "sim": 0.5})
    seq, sim = RegimeData(s["en"], s["sim"], 10), RegimeData(s["en"], s["mix"], 10)
    for data in (seq, sim):
        assert _langs(data.batch(9, 16, 32)[0]) == {"en"}
    assert _langs(seq.batch(10, 16, 32)[0]) == {"sim"}
    assert _langs(sim.batch(10, 16, 32)[0]) == {"en", "sim"}
    x1, y1 = sim.batch(12, 4, 16, seed=3)
    x2, y2 = sim.batch(12, 4, 16, seed=3)
    assert torch.equal(x1, x2) and torch.equal(x1[:, 1:], y1[:, :-1])   # a pure function of (seed, step)


def _model():
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=G.vocab_size, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                         max_seq_len=32))


def test_branching_at_the_onset_equals_training_from_scratch(tmp_path):
    s = _streams()
    cfg = TrainConfig(steps=12, batch_size=4, seq_len=16, warmup_steps=2, eval_every=6, eval_tokens=256,
                      checkpoint_every=3, cpu=True)
    seq, sim = RegimeData(s["en"], s["sim"], 6), RegimeData(s["en"], s["mix"], 6)
    snaps = [3, 6, 9, 12]
    train_regime(_model(), seq, s["en"], cfg, tmp_path / "seq", snaps)
    assert (tmp_path / "seq" / "onset.pt").exists()
    assert all((tmp_path / "seq" / f"snap_{k}.pt").exists() for k in snaps)
    train_regime(_model(), sim, s["en"], cfg, tmp_path / "branch", [9, 12], branch_from=tmp_path / "seq" / "onset.pt")
    assert not (tmp_path / "branch" / "snap_3.pt").exists()
    train_regime(_model(), sim, s["en"], cfg, tmp_path / "scratch", snaps)
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    for k in (9, 12):
        a, b = load(tmp_path / "branch" / f"snap_{k}.pt"), load(tmp_path / "scratch" / f"snap_{k}.pt")
        assert all(torch.equal(a[n], b[n]) for n in a), k
    # the regimes agree before the onset and differ after it
    a, b = load(tmp_path / "seq" / "snap_6.pt"), load(tmp_path / "scratch" / "snap_6.pt")
    assert all(torch.equal(a[n], b[n]) for n in a)
    a, b = load(tmp_path / "seq" / "snap_12.pt"), load(tmp_path / "scratch" / "snap_12.pt")
    assert not all(torch.equal(a[n], b[n]) for n in a)
    # a finished regime is not trained again
    before = (tmp_path / "branch" / "snap_12.pt").stat().st_mtime_ns
    train_regime(_model(), sim, s["en"], cfg, tmp_path / "branch", [9, 12], branch_from=tmp_path / "seq" / "onset.pt")
    assert (tmp_path / "branch" / "snap_12.pt").stat().st_mtime_ns == before
    with pytest.raises(ValueError):
        phase_mixes("interleaved", "en", "sim")
