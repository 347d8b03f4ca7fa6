"""AF-CLAP and InfoNCE losses against their formulas; encoders; windowing of scenes into 10 s log-mels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperlab.af2.clap import Clap, ClapConfig, WordVocab, af_clap_loss, info_nce, rank_captions, words
from paperlab.af2.data import clap_item, scene_mels
from paperlab.core.audio_scenes import SYNTH_KINDS, make_long_scene, make_scene


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_af_clap_loss_matches_the_written_formula():
    B, M, N, e = 3, 2, 2, 8
    a, pos, neg = _unit(B, e), _unit(B, M, e, seed=1), _unit(B, M, N, e, seed=2)
    scale = torch.tensor(5.0)
    got = af_clap_loss(a, pos, neg, scale)
    s = lambda x, y: torch.exp(scale * (x @ y))  # noqa: E731
    losses = []
    for i in range(B):
        num = sum(s(a[i], pos[i, j]) for j in range(M))
        others = sum(s(a[i], pos[k, j]) for k in range(B) if k != i for j in range(M))
        negs = sum(s(a[i], neg[i, j, n]) for j in range(M) for n in range(N))
        losses.append(-torch.log(num / (num + others + negs)))
    torch.testing.assert_close(got, torch.stack(losses).mean())


def test_af_clap_with_one_positive_and_no_negatives_is_the_audio_side_of_infonce():
    a, t = _unit(4, 8), _unit(4, 8, seed=3)
    scale = torch.tensor(3.0)
    one_sided = F.cross_entropy(scale * a @ t.T, torch.arange(4))
    torch.testing.assert_close(af_clap_loss(a, t[:, None], torch.empty(4, 1, 0, 8), scale), one_sided)
    two_sided = 0.5 * (one_sided + F.cross_entropy(scale * t @ a.T, torch.arange(4)))
    torch.testing.assert_close(info_nce(a, t, scale), two_sided)


def test_a_hard_negative_raises_the_loss_and_its_gradient_pushes_it_away():
    a = _unit(2, 8)
    pos = F.normalize(a + 0.3 * _unit(2, 8, seed=4), dim=-1)[:, None]   # close to its audio
    far = -a[:, None, None]                                   # cos = -1 with the audio: negligible
    near = pos[:, :, None].clone().requires_grad_(True)       # a negative identical to the positive
    scale = torch.tensor(10.0)
    assert af_clap_loss(a, pos, near, scale) > af_clap_loss(a, pos, far, scale)
    af_clap_loss(a, pos, near, scale).backward()
    # gradient descent moves the negative against a: its cosine with a drops
    step = near.detach() - 0.1 * near.grad
    assert float((step[:, 0, 0] * a).sum(-1).mean()) < float((near.detach()[:, 0, 0] * a).sum(-1).mean())


def test_words_and_vocab():
    assert words('A "dog", then') == ["a", '"', "dog", '"', ",", "then"]
    v = WordVocab.build(["a high beep, then a chirp"])
    ids = v.batch(["a chirp", "a zebra then a high beep"], max_len=4)
    assert ids.shape == (2, 4) and ids[0, 2:].tolist() == [0, 0] and ids[1, 1] == 1  # pad 0, unk 1
    assert v.unknown_share("a zebra") == 0.5


def test_encoders_shapes_and_ranking_is_sorted():
    items = ["a loud high beep, then a rising chirp", "a rising chirp, then a loud high beep"]
    model = Clap(ClapConfig(d_model=32, n_tokens=8, embed_dim=16), WordVocab.build(items))
    mel = torch.randn(3, 1001, 64) * 10 - 50
    tok, emb = model.audio(mel)
    assert tok.shape == (3, 8, 32) and emb.shape == (3, 16)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    t = model.encode_text(items)
    assert t.shape == (2, 16) and not torch.allclose(t[0], t[1])   # word order matters to the text encoder
    ranking = rank_captions(model, mel[:2].numpy(), items)
    assert [r["rank"] for r in ranking] == [1, 2] and ranking[0]["score"] >= ranking[1]["score"]


def test_clap_item_negatives_differ_only_by_the_swap():
    it = clap_item(make_scene(5, n_events=3, kinds=SYNTH_KINDS), n_variants=4)
    assert len(it.variants) == 4 and len(set(it.variants)) == 4
    for v, negs, order in zip(it.variants, it.negatives, it.order_negative, strict=True):
        assert len(negs) == 2 and v not in negs
        if order is not None:
            assert sorted(words(order)) == sorted(words(v))   # the same words, another order


def test_scene_windows_zero_padded_and_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "requests.sqlite"))
    scenes = [make_long_scene(1, duration_s=35.0, kinds=SYNTH_KINDS), make_scene(2, kinds=SYNTH_KINDS)]
    mels, mask = scene_mels(scenes, max_windows=3, tag="t")
    assert mels.shape == (2, 3, 1001, 64) and mask.tolist() == [[True] * 3, [True, False, False]]
    assert (mels[1, 1:] == 0).all()                            # collated padding windows
    # 35 s cut at 3 windows = 30 s, whole windows: the last one holds audio up to its end
    assert mels[0, 2].max() > -100
    again, _ = scene_mels(scenes, max_windows=3, tag="t")       # from the cache
    assert np.array_equal(again, mels)
    one, m1 = scene_mels(scenes[:1], max_windows=5, tag="t")   # 35 s -> 4 windows, the last zero-padded
    assert one.shape[1] == 4 and m1.all()
    assert one[0, 3, 600:].max() == pytest.approx(-100.0)      # 5 s of audio, then zero padding (-100 dB)
