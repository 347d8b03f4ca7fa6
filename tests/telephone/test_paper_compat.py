"""``--compat paper`` reproduces the paper's stored per-passage metric values from its stored texts.

Fixture: three passages (generations 2, 50, 100) of the official repository's stored evaluation of
Llama-3.1-8B EN-FR-EN on news2024 (``Results/Evaluation/Bilingual self-loop/Other metrics/...``), copied
unchanged with their stored values; see the fixture's ``_source``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperlab.core import metrics as M
from paperlab.telephone.metrics import score_pairs, word_tokenize

FIXTURE = Path(__file__).parent / "fixtures" / "official_other_metrics_news2024_llama_en_fr_en.json"
STORED = {"bleu": "BLEU", "chrf": "CHR-F", "meteor": "METEOR", "rouge1": "ROUGE-1", "rougeL": "ROUGE-L"}


def _pairs():
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [(p["original"], g) for p in data["passages"] for g in p["generations"].values()]


def test_fixture_names_its_source():
    src = json.loads(FIXTURE.read_text(encoding="utf-8"))["_source"]
    assert src["repository"] == "amr-mohamedd/LLM-as-a-Broken-Telephone" and "Other metrics" in src["path"]
    assert len(_pairs()) == 9


def test_nltk_word_tokenize_with_punkt_english():
    # Punkt keeps abbreviations inside a sentence; NLTK's word tokenizer splits clitics and final periods
    assert word_tokenize("Mr. Smith didn't pay £4,150. The FA's fine was 2-0.") == [
        "Mr.", "Smith", "did", "n't", "pay", "£4,150", ".", "The", "FA", "'s", "fine", "was", "2-0", "."]


@pytest.mark.parametrize("metric", list(STORED))
def test_paper_mode_reproduces_the_stored_values(metric):
    if metric == "meteor" and M._wordnet() is None:
        pytest.skip("WordNet database not installed (METEOR synonyms)")
    pairs = _pairs()
    ours = score_pairs([o for o, _ in pairs], [g["text"] for _, g in pairs], compat="paper", bertscore=False)[metric]
    stored = [g[STORED[metric]] for _, g in pairs]
    # torchmetrics returns float32 (BLEU, ROUGE): stored values carry 7 significant digits
    assert ours == pytest.approx(stored, abs=2e-6), metric


def test_standard_meteor_is_not_the_papers():
    # the regex tokenizer of the standard mode gives other METEOR values: the paper mode's tokenizer matters
    pairs = _pairs()
    std = score_pairs([o for o, _ in pairs], [g["text"] for _, g in pairs], bertscore=False)["meteor"]
    assert max(abs(a - g["METEOR"]) for a, (_, g) in zip(std, pairs, strict=True)) > 1e-3
