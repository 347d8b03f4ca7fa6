"""Training on real procedural clips: the loss falls, a killed run resumes to the same weights, a finished
model is reused, predictions cover every question."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.video import VideoConfig, encode_frames, frame_encoder, video_dataset
from paperlab.storm.model import StormConfig, Vocab
from paperlab.storm.training import FitConfig, fit, make_qaset, predict


@pytest.fixture(scope="module")
def data():
    vids = video_dataset(24, VideoConfig(n_frames=8, size=16), seed=5)
    import numpy as np

    feats = encode_frames(frame_encoder("random", size=16), np.stack([v.frames for v in vids]))
    vocab = Vocab.build([q.question for v in vids for q in v.qa], [c for v in vids for q in v.qa for c in q.choices])
    return make_qaset(feats, [v.qa for v in vids], vocab, 24), vocab, vids


def _cfg(vocab, projector="mamba"):
    return StormConfig(feat_dim=64, grid=(2, 2), n_frames=8, projector=projector, d_model=16, mamba_layers=1,
                       temporal_pool=2, vocab_size=len(vocab), answer_layers=1, answer_heads=2)


def test_qaset_layout(data):
    qa, vocab, vids = data
    assert len(qa) == sum(len(v.qa) for v in vids) and qa.feats.shape == (24, 8, 4, 64)
    r = 0
    for i, v in enumerate(vids):
        for q in v.qa:
            assert int(qa.video[r]) == i and int(qa.answer[r]) == q.answer
            assert [vocab.itos[j] for j in qa.choice_ids[r] if j >= 0] == list(q.choices)
            r += 1
    feats, video_of, *_, rows = qa.subset(torch.tensor([3, 1]))
    assert feats.shape[0] == 2 and set(qa.video[rows].tolist()) == {1, 3}
    assert torch.equal(torch.tensor([3, 1])[video_of], qa.video[rows])


def test_loss_falls_and_predictions_cover_all(data):
    qa, vocab, _ = data
    model, hist = fit(_cfg(vocab), qa, FitConfig(steps=40, batch_videos=8, lr=3e-3, warmup=5))
    first, last = sum(hist["loss"][:5]) / 5, sum(hist["loss"][-5:]) / 5
    assert last < first
    pred, conf = predict(model, qa, sample=2)
    assert pred.shape == (len(qa),) and ((conf > 0) & (conf <= 1)).all()
    assert all(0 <= p < int((c >= 0).sum()) for p, c in zip(pred, qa.choice_ids, strict=True))


def test_killed_run_resumes_to_same_weights_and_finished_model_is_reused(data, tmp_path):
    qa, vocab, _ = data
    fc = FitConfig(steps=12, batch_videos=6, checkpoint_every=4, warmup=2)
    full, _ = fit(_cfg(vocab, "linear"), qa, fc)

    class Kill(Exception):
        pass

    def kill(step):
        if step == 9:
            raise Kill

    path = tmp_path / "m.pt"
    with pytest.raises(Kill):
        fit(_cfg(vocab, "linear"), qa, fc, path, on_step=kill)
    assert path.with_suffix(".ckpt").exists() and not path.exists()
    resumed, hist = fit(_cfg(vocab, "linear"), qa, fc, path)
    assert hist["resumed_from"] == 8 and len(hist["loss"]) == 12
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    again, hist2 = fit(_cfg(vocab, "linear"), qa, fc, path, on_step=kill)   # finished: loaded, not trained
    assert hist2["loss"] == hist["loss"]


@pytest.mark.slow
def test_hf_answer_lm_by_path_trains_and_scores_choices(data, tmp_path):
    """``answer_lm``: a transformers causal LM (a tiny random Llama saved here) reads the visual prefix; the
    choices are its tokens; one training step runs and the padding of a question does not matter."""
    from paperlab.storm.model import Storm, TokenizerVocab
    from tests_helpers import save_tiny_llama

    qa, _, vids = data
    text = " ".join(q.question + " " + " ".join(q.choices) for v in vids for q in v.qa) * 20
    folder = save_tiny_llama(tmp_path / "llama", text, vocab_size=300, intermediate_size=64, max_positions=128)
    vocab = TokenizerVocab(str(folder))
    ids = {c: vocab.choice(c) for c in ("left", "right", "up", "down", "yes", "no")}
    assert len(set(ids.values())) == len(ids)                  # distinct first tokens
    hq = make_qaset(qa.feats, [v.qa for v in vids], vocab, 24)
    cfg = StormConfig(feat_dim=64, grid=(2, 2), n_frames=8, d_model=16, mamba_layers=1, temporal_pool=2,
                      answer_lm=str(folder))
    model, hist = fit(cfg, hq, FitConfig(steps=2, batch_videos=4, warmup=1))
    assert len(hist["loss"]) == 2 and all(x == x for x in hist["loss"])
    assert isinstance(model, Storm) and hasattr(model.answer, "bridge")
    feats = hq.feats[:1]
    q = hq.q_ids[:1, : int(hq.q_len[0])]
    with torch.no_grad():
        a = model(feats, torch.tensor([0]), q, hq.q_len[:1], hq.choice_ids[:1])
        b = model(feats, torch.tensor([0]), torch.cat([q, torch.zeros(1, 3, dtype=torch.long)], 1), hq.q_len[:1],
                  hq.choice_ids[:1])
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
