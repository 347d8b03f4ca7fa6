"""Metrics (standard and paper conventions) and the FActScore judge on real small inputs."""

from __future__ import annotations

import json
import math

import pytest

from paperlab.core import metrics as M
from paperlab.core.errors import UserError
from paperlab.telephone.factscore import LexicalFactJudge, clause_facts
from paperlab.telephone.metrics import paper_bleu, paper_chrf, score_pairs
from paperlab.telephone.scoring import score_files

ORIG = ("The council approved a budget of 450 million euros on Tuesday. The money will fund three new hospitals "
        "in the north, and construction starts in 2026.")


def test_identity_scores_one():
    s = score_pairs([ORIG], [ORIG])
    for m in ("bleu", "chrf", "meteor", "rouge1", "rougeL", "bertscore"):
        assert s[m][0] == pytest.approx(1.0, abs=2e-3), m


def test_metrics_fall_with_distortion():
    mild = ORIG.replace("Tuesday", "Monday")
    heavy = "A committee discussed some money for buildings at a later date."
    s = score_pairs([ORIG] * 3, [ORIG, mild, heavy])
    for m in ("bleu", "chrf", "meteor", "rouge1", "rougeL", "bertscore"):
        assert s[m][0] > s[m][1] > s[m][2], (m, s[m])


def test_paper_bleu_swaps_hypothesis_and_reference():
    # Original (5 tokens) is the hypothesis: every n-gram matches, brevity penalty exp(1 - 8/5).
    original, generation = "a b c d e", "a b c d e f g h"
    assert paper_bleu(generation, original) == pytest.approx(math.exp(1 - 8 / 5), rel=1e-6)
    assert paper_chrf(ORIG, ORIG) == pytest.approx(1.0)  # NLTK: strings under 6 chars score < 1


def test_meteor_uses_wordnet_synonyms_when_installed():
    if M._wordnet() is None:
        pytest.skip("WordNet database not installed")
    # NLTK matches synonyms after stemming the leftover reference words, so pick unstemmed words.
    assert M.meteor("the dog is quick", "the dog is fast") > M.meteor("the dog is green", "the dog is fast") + 0.2
    assert "wordnet" in M.meteor_signature()


def test_clause_facts_and_lexical_judge():
    facts = clause_facts(ORIG)
    assert len(facts) >= 3 and any("450 million" in f for f in facts)
    judge = LexicalFactJudge()
    same, changed_number, unrelated, empty = judge.score(
        ORIG, [ORIG, ORIG.replace("450", "45"), "Bananas are yellow.", ""])
    assert same.score == 1.0 and same.recall == 1.0 and same.n_facts == len(facts)
    assert changed_number.score < 1.0 and not changed_number.supported[0]
    assert unrelated.score == 0.0 and unrelated.n_facts == 1 and unrelated.recall == 0.0
    assert empty.score == 0.0 and empty.n_facts == 0   # the official eval.py records 0 for an empty generation


def test_factscore_checks_the_generations_facts_against_the_original():
    # The paper's FActScore is a precision: facts extracted from the GENERATION, verified against the original.
    judge = LexicalFactJudge()
    first_sentence = ORIG.split(". ")[0] + "."
    invented = ORIG + " The mayor resigned after a bribery scandal involving a football club."
    dropped, added = judge.score(ORIG, [first_sentence, invented])
    # dropping content keeps every stated fact true: precision 1, but the original's facts are missing
    assert dropped.score == 1.0 and dropped.recall < 1.0
    assert dropped.n_facts < added.n_facts            # facts per response follow the generation
    # adding an invented fact lowers the precision, while every fact of the original is still there
    assert added.score < 1.0 and added.recall == 1.0
    assert added.n_facts == len(clause_facts(invented)) and not added.supported[-1]


def test_score_files_both_formats(tmp_path):
    orig = tmp_path / "orig.jsonl"
    orig.write_text(json.dumps({"id": "p1", "text": ORIG}) + "\n")
    gens = tmp_path / "gens.jsonl"
    gens.write_text(json.dumps({"id": "p1", "iteration": 1, "text": ORIG}) + "\n" +
                    json.dumps({"id": "p1", "0_en": ORIG, "2_fr": "…", "2_en": ORIG.replace("three", "two")}) + "\n")
    res = score_files(orig, gens, compat="paper")
    assert {r["iteration"] for r in res["per_generation"]} == {0, 1, 2}
    assert res["by_iteration"]["2"]["chrf"]["mean"] < res["by_iteration"]["1"]["chrf"]["mean"]
    assert "torchmetrics" in res["signatures"]["bleu"]
    row = res["per_generation"][0]
    assert {"factscore", "fact_recall", "facts_per_response", "rouge1", "rougeL"} <= set(row)
    assert row["facts_per_response"] == len(clause_facts(ORIG))


def test_score_files_bad_inputs(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no records"):
        score_files(empty, empty)
    with pytest.raises(UserError, match="file not found"):
        score_files(tmp_path / "missing.jsonl", empty)
