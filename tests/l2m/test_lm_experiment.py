"""The LM scorer, sampling from long documents, and an end-to-end run with a tiny model."""

import json

import numpy as np
import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.l2m.lm import (
    LMScorer,
    load_documents,
    load_extra_novels,
    paragraph_offsets,
    sample_blocks,
    start_token_id,
    tokenize_with_starts,
)


def test_lm_scorer_matches_full_logits(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    sc = LMScorer(model, tok, chunk=7)                        # chunking must not change anything
    assert sc.start_id == start_token_id(tok) == tok.convert_tokens_to_ids("<|endoftext|>")
    seqs = np.random.default_rng(0).integers(1, len(tok), size=(3, 20))
    lp = sc.token_logprobs(seqs)
    ids = torch.cat([torch.full((3, 1), sc.start_id), torch.as_tensor(seqs)], 1)
    with torch.no_grad():
        ref = torch.log_softmax(model(ids).logits[:, :-1].double(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    assert np.allclose(lp, ref.numpy(), atol=1e-5)
    assert (lp < 0).all()


def test_sample_blocks_are_disjoint_windows_of_documents():
    docs = [np.arange(100), np.arange(1000, 1050)]
    s = sample_blocks(docs, 5, 20, seed=0)
    assert s.shape == (5, 20)
    assert all(np.all(np.diff(r) == 1) for r in s)            # consecutive tokens of one document
    assert len({int(r[0]) for r in s}) == 5
    with pytest.raises(UserError):
        sample_blocks(docs, 50, 20)


def test_blocks_open_at_paragraph_starts(tiny_lm_dir):
    """No block opens mid-sentence behind the scorer's document-start token (the old tiling did)."""
    from transformers import AutoTokenizer

    from paperlab.core.data import data_path

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    text = data_path("gutenberg", "105.txt").read_text(encoding="utf-8")[:40000]
    (ids,), (starts,) = tokenize_with_starts([text], tok, "paragraph")
    assert tok.decode(ids) == text                                    # tokenized piecewise, nothing lost
    offs = paragraph_offsets(text)
    assert len(starts) == len(offs) > 50 and offs[0] == 0
    for s, o in zip(starts, offs, strict=True):                        # each start token opens its paragraph
        assert (o == 0 or text[:o].rstrip(" \t").endswith("\n\n")) and tok.decode(ids[s: s + 3]) == text[o: o + len(tok.decode(ids[s: s + 3]))]
    blocks = sample_blocks([ids], 12, 64, seed=0, starts=[starts])
    at = {tuple(ids[s: s + 64]) for s in starts}
    assert all(tuple(b) in at for b in blocks)
    old = sample_blocks([ids], 12, 64, seed=0)                       # the old tiling: mid-sentence openings
    assert sum(tuple(b) in at for b in old) < 6
    # chapter starts: the headings
    (_,), (ch,) = tokenize_with_starts([text], tok, "chapter")
    assert len(ch) == text.count("\nChapter ") and all(tok.decode(ids[s: s + 4]).startswith("Chapter") for s in ch)
    with pytest.raises(UserError):
        sample_blocks([ids], len(ch) + 1, 64, starts=[ch])


def test_extra_novels_are_packaged():
    extra = load_extra_novels()
    assert len(extra) == 11 and min(len(d) for d in extra) > 300_000
    assert all("\r" not in d for d in extra)


def test_packaged_corpora_are_long_documents():
    g = load_documents("gutenberg")
    assert len(g) == 4 and min(len(d) for d in g) > 400_000
    w = load_documents("wikitext2")
    assert len(w) > 20 and all(d.lstrip().startswith("= ") for d in w[1:])
    with pytest.raises(UserError):
        load_documents("/nonexistent/corpus")


def test_reproduce_end_to_end_tiny(tiny_lm_dir, tmp_path):
    from paperlab.l2m.experiment import reproduce

    corpus = tmp_path / "docs"
    corpus.mkdir()
    from paperlab.core.data import data_path

    text = data_path("gutenberg", "105.txt").read_text(encoding="utf-8")
    (corpus / "a.txt").write_text(text[:40000])
    (corpus / "b.txt").write_text(text[40000:80000])
    run_dir = reproduce(
        quick=True, out=tmp_path / "run", model=f"hf:{tiny_lm_dir}", corpus=str(corpus), n_samples=6, max_split=8,
        ratios=[2, 3], fit_min_split=2, max_distance=16, gaussian_samples=300, gaussian_max_split=16, train_steps=4,
        train_d_model=16, train_layers=1, train_heads=2, train_seq_len=32, train_batch=4, eval_windows=8,
        n_boot=50, threads=1, state_lengths=[8, 16, 32])
    res = json.loads((run_dir / "results.json").read_text())
    ids = {c["id"]: c for c in res["claims"]}
    assert set(ids) == {"gaussian_mi_exact", "bipartite_mi_power_law", "fixed_state_plateaus"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in ids.values())
    # exact densities: never contradicted (300 samples are too few to establish the 10% margin at L_x = 2)
    assert ids["gaussian_mi_exact"]["verdict"] != "contradicted"
    assert len(ids["gaussian_mi_exact"]["values"]["evidence"]) == 3
    assert ids["fixed_state_plateaus"]["values"]["evidence"]["transformer late drop"]["n"] == 8   # eval windows
    assert ids["bipartite_mi_power_law"]["values"]["evidence"]["beta"]["n"] == 6                 # text blocks
    assert (run_dir / "gaussian_mi_samples.npz").exists()
    assert "direct_samples" not in res["results"]["gaussian"]     # per-sample arrays on disk, not in results.json
    b = res["results"]["text"]["bipartite"]
    assert set(b) == {"2", "3"} and len(b["2"]["direct"]) == 3 and b["2"]["vclub"] is not None
    st = res["results"]["state"]
    assert st["transformer"][2] == 4 * st["transformer"][0] and len(set(st["recurrent"])) == 1
    report = (run_dir / "report.md").read_text()
    assert "## Claims" in report and (run_dir / "loss_per_position.png").exists()
    assert (run_dir / "logprobs.npz").exists()
