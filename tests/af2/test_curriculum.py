"""The freezing schedule: which parameters each stage may change, and that the LM stays frozen."""

import torch

from paperlab.af2.clap import AudioEncoder, ClapConfig
from paperlab.af2.curriculum import AudioFlamingo, Batch, paper_stages, train_stage
from paperlab.af2.flamingo import FlamingoLM
from paperlab.core.transformer import Transformer, TransformerConfig


def _model():
    torch.manual_seed(0)
    lm = Transformer(TransformerConfig(vocab_size=30, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32,
                                       tie_embeddings=False))
    audio = AudioEncoder(ClapConfig(d_model=16, n_tokens=4, audio_layers=1))
    return AudioFlamingo(audio, FlamingoLM(lm, d_audio=16, heads=2, dim_head=8), special_rows=[2, 4])


def _batch(step):
    g = torch.Generator().manual_seed(step)
    ids = torch.randint(5, 30, (3, 8), generator=g)
    ids[:, 0] = 2                                               # <audio>
    ids[:, -1] = 4                                              # <eoc>
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, 5:] = True
    return Batch(ids, mask, torch.ones(3, 2, dtype=torch.bool), mels=torch.randn(3, 2, 1001, 64, generator=g) - 40)


def _snapshot(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_stages_follow_the_paper():
    s = paper_stages((1e-4, 2e-5, 2e-5), (1, 1, 1), long_windows=30)
    assert [x.max_windows for x in s] == [1, 3, 30]
    assert [x.lr for x in s][:2] == [1e-4, 2e-5]
    assert "clap" not in s[0].trainable and "clap" in s[1].trainable and "clap" not in s[2].trainable


def test_each_stage_changes_only_its_modules():
    model = _model()
    for stage in paper_stages((1e-2, 1e-2, 1e-2), (3, 3, 3), long_windows=2):
        before = _snapshot(model)
        hist = train_stage(model, stage, _batch, warmup=1, log_every=1)
        after = model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert any(k.startswith("flamingo.xattn") for k in changed)
        assert any(k.startswith("flamingo.transform") for k in changed)
        assert any(k.startswith("audio.") for k in changed) == ("clap" in stage.trainable)
        lm_changed = {k for k in changed if k.startswith("flamingo.lm.")}
        assert lm_changed <= {"flamingo.lm.tok_emb.weight"}     # the LM is frozen ...
        rows = (before["flamingo.lm.tok_emb.weight"] != after["flamingo.lm.tok_emb.weight"]).any(1)
        assert set(rows.nonzero().flatten().tolist()) <= {2, 4}  # ... but for the <audio>/<eoc> rows
        assert len(hist.gates) == 3 and hist.gates[-1][0][0] != 0.0  # gates leave 0
