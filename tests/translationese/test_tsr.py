"""TSR: the released annotations reproduce the paper's table; the span arithmetic; the Label Studio parser's
errors (hypothesis: any malformed export is one UserError, never another exception)."""

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core.errors import UserError
from paperlab.translationese import tsr as T


def task(translation, spans, system="sys_trans", n_ann=1):
    result = [{"value": {"start": s, "end": e, "labels": labels}, "type": "labels"} for s, e, labels in spans]
    return {"data": {"text": "Quelle", "translation": translation, "type": system},
            "annotations": [{"completed_by": k, "result": result if k == 0 else []} for k in range(n_ann)]}


def test_released_tables_reproduce_the_paper_to_two_decimals():
    for pair in T.PAIRS:
        rows = T.system_table(T.released_items(pair), n_boot=100)
        assert sum(r["n"] for r in rows) == (900 if pair == "deen" else 1800)
        assert len(rows) == 9
        compared = T.compare_paper(pair, rows)
        assert compared  # enzh: six systems; deen: the range's two ends
        for c in compared:
            assert T.rounds_to(c["recomputed"], c["paper"]), c
        for r in rows:  # the interval holds the point, the per-annotator shares are shares
            assert r["share"]["lo"] <= r["share"]["value"] <= r["share"]["hi"]
            assert len(r["share_per_annotator"]) == 3
    for pair, paper in T.PAPER_SFT.items():
        refs = T.released_items(pair, "sft")
        assert len(refs) == 500
        share = sum(it.translationese() for it in refs) / len(refs)
        assert T.rounds_to(share, paper["share"])
        assert T.rounds_to(sum(it.tsr for it in refs) / len(refs), paper["mean_tsr"])


def test_span_ratio_counts_flow_labels_only_first_label_and_overlaps():
    y = "x" * 100
    t = T.parse_export([task(y, [(0, 10, ["Unnatural Phrase Flow"]), (5, 25, ["Unnatural Sentence Flow"]),
                                 (30, 60, ["Mistranslations"]), (60, 70, ["Terminology", "Unnatural Phrase Flow"]),
                                 (70, 75, ["Unnatural Sentence Flow", "Others"])])])[0]
    # 10 + 20 (overlap not merged) + 5; the mistranslation and the span whose FIRST label is Terminology are out
    assert T.annotator_tsr(t) == pytest.approx(35 / 100)
    assert T.annotator_tsr(t, ["Mistranslations"]) == pytest.approx(0.30)


def test_mean_over_annotators_and_strict_threshold():
    y = "y" * 50
    a = [task(y, [(0, 10, ["Unnatural Phrase Flow"])])]      # 0.2
    b = [task(y, [(0, 10, ["Unnatural Sentence Flow"])])]    # 0.2
    items = T.aggregate([T.parse_export(a), T.parse_export(b)])
    assert items[0].tsr == pytest.approx(0.2) and items[0].tsr_each == [0.2, 0.2]
    assert not items[0].translationese(0.2)                  # strictly greater
    c = [task(y, [(0, 11, ["Unnatural Sentence Flow"])])]
    assert T.aggregate([T.parse_export(a), T.parse_export(c)])[0].translationese(0.2)


def test_only_the_first_annotation_of_a_task_counts():
    t = task("z" * 20, [(0, 20, ["Unnatural Phrase Flow"])], n_ann=2)
    t["annotations"].reverse()  # now annotations[0] has no span
    assert T.annotator_tsr(T.parse_export([t])[0]) == 0.0


def test_misaligned_or_unequal_project_files_are_refused():
    a = T.parse_export([task("one", []), task("two", [])])
    with pytest.raises(UserError, match="has 1 tasks"):
        T.aggregate([a, a[:1]])
    b = T.parse_export([task("one", []), task("other", [])])
    with pytest.raises(UserError, match="another translation"):
        T.aggregate([a, b])


@pytest.mark.parametrize("obj, message", [
    ({"a": 1}, "not a list"), ([], "no tasks"), ([1], "not an object"), ([{"data": {}}], "data.translation"),
    ([{"data": {"translation": "abc"}}], "no annotation"), ([{"data": {"translation": "abc"}, "annotations": [{}]}],
                                                            "result"),
    ([task("abc", [(0, 9, ["Unnatural Phrase Flow"])])], "outside"),
    ([task("abc", [(2, 1, ["Unnatural Phrase Flow"])])], "outside"),
    ([task("abc", [(0, 1, [])])], "labels"),
    ([{"data": {"translation": "abc"}, "annotations": [{"result": [{"value": {"start": "0", "end": 1,
                                                                              "labels": ["x"]}}]}]}], "integers"),
])
def test_malformed_exports_are_one_line_user_errors(obj, message):
    with pytest.raises(UserError, match=message) as e:
        T.parse_export(obj)
    assert "\n" not in str(e.value)


def test_broken_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[{")
    with pytest.raises(UserError, match="not valid JSON"):
        T.read_export(p)
    g = tmp_path / "x.json.gz"
    g.write_bytes(gzip.compress(b"[1, 2, 3]")[:15])
    with pytest.raises(UserError, match="broken gzip"):
        T.read_export(g)
    ok = tmp_path / "ok.json.gz"
    ok.write_bytes(gzip.compress(json.dumps([task("abc", [(0, 3, ["Unnatural Phrase Flow"])])]).encode()))
    assert T.annotator_tsr(T.read_export(ok)[0]) == 1.0


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 50) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(
                               st.sampled_from(["data", "translation", "annotations", "result", "value", "start",
                                                "end", "labels", "type", "text"]), c, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_parses_or_is_a_user_error(obj):
    try:
        tasks = T.parse_export(obj)
    except UserError as e:
        assert "\n" not in str(e)
        return
    for t in tasks:
        assert 0 <= T.annotator_tsr(t) <= len(t.spans)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.data())
def test_valid_exports_give_the_span_sum(y, data):
    spans = []
    for _ in range(data.draw(st.integers(0, 4))):
        s = data.draw(st.integers(0, len(y)))
        e = data.draw(st.integers(s, len(y)))
        spans.append((s, e, [data.draw(st.sampled_from([*T.FLOW_LABELS, "Mistranslations"]))]))
    t = T.parse_export([task(y, spans)])[0]
    flow = sum(e - s for s, e, lab in spans if lab[0] in T.FLOW_LABELS)
    assert T.annotator_tsr(t) == pytest.approx(flow / len(y))
