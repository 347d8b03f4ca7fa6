"""PPL equals the official notebook's exp(model(ids, labels=ids).loss); per-direction filtering; the heuristics'
tokenizers and formulas; the polishing guard."""

import math

import numpy as np
import pytest

from paperlab.translationese import heuristics as H
from paperlab.translationese.polish import accept, clean_reply, polish
from paperlab.translationese.ppl import perplexities, ppl_filter, summarize


@pytest.fixture(scope="module")
def tiny(tiny_chat_dir):
    from paperlab.core.models import load_torch_model

    return load_torch_model(f"hf:{tiny_chat_dir}", device="cpu")


def test_ppl_is_the_notebooks_exp_loss_and_does_not_depend_on_batching(tiny):
    import torch

    model, tok = tiny
    texts = ["The goods cost less than twenty euros.", "A short one", "In the end he agreed to appoint him.", "x"]
    ppl = perplexities(model, tok, texts, batch_size=3)
    for t, p in zip(texts, ppl, strict=True):
        ids = torch.tensor([tok(t)["input_ids"]])
        if ids.shape[1] < 2:
            assert math.isnan(p)  # nothing to score
            continue
        with torch.no_grad():
            ref = math.exp(model(ids, labels=ids).loss.item())
        assert p == pytest.approx(ref, rel=1e-4)
    assert np.allclose(perplexities(model, tok, texts, batch_size=1), ppl, equal_nan=True, rtol=1e-4)
    s = summarize(ppl)
    assert s["n"] == 4 and s["mean"] == pytest.approx(np.nanmean(ppl)) and s["median"] == pytest.approx(np.nanmedian(ppl))


def test_filter_cuts_per_direction():
    ppl = [1, 9, 2, 8, 100, 200, 300, float("nan"), 150, 120]
    groups = ["de"] * 4 + ["zh"] * 6
    keep = ppl_filter(ppl, 0.5, groups)
    assert keep.tolist() == [True, False, True, False, True, False, False, False, True, True]
    # a global cut would keep all of 'de' and none of 'zh' (the released file keeps both: two thresholds)
    assert ppl_filter(ppl, 0.5).tolist()[:4] == [True, True, True, True]
    with pytest.raises(ValueError):
        ppl_filter(ppl, 1.0)


def test_word_tokenize_is_nltks_and_chinese_is_per_character():
    toks = H.word_tokenize('Mr. Smith said "I can\'t go." It cost $5.5 million.')
    assert toks == ["Mr.", "Smith", "said", "``", "I", "ca", "n't", "go", ".", "''", "It", "cost", "$", "5.5",
                    "million", "."]
    assert H.tokens("我们在2024年用GPT，很好。", "zh") == ["我", "们", "在", "2024", "年", "用", "GPT", "很", "好"]


def test_length_variety_and_lexical_density():
    lv = H.length_variety(["a b c d", "eins zwei"], ["a b", "one two"], "de", "en")
    assert lv == pytest.approx([0.5, 0.0])
    c, n = H.content_counts("The cat sat on the mat.")
    assert (c, n) == (3, 7)  # cat, sat, mat of 7 tokens (the full stop counts), with spaCy's UPOS as with the list
    if H._spacy_english() is None:  # "It is." has no content word (spaCy tags "is" AUX as well)
        assert H.lexical_density(["The cat sat on the mat.", "It is."]) == pytest.approx(3 / 10)


def test_polish_guard_and_cleanup(tiny):
    src = "Die Ware hat unter 20 Euro gekostet."
    ref = "The goods cost less than 20 euros."
    assert clean_reply('Rewritten translation: "The goods were under 20 euros."\nmore') == \
        "The goods were under 20 euros."
    assert accept("The goods were under 20 euros.", ref, src)
    assert not accept("", ref, src)
    assert not accept(src, ref, src)                       # a copy of the source
    assert not accept("Sure!", ref, src)                   # too short
    assert not accept("Sounds like a German sentence, here you go", ref, src)  # shares little with the reference
    recs = polish(tiny, [src], [ref])                      # a real (tiny, random) local model
    r = recs[0]
    assert r["text"] == (clean_reply(r["reply"]) if r["rewritten"] else ref)
