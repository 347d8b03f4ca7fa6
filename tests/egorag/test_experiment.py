"""Experiment pieces: latency fit, the answer step with the real default model, the latency driver."""

from __future__ import annotations

import numpy as np

from paperlab.egorag.experiment import default_config, measure_latency
from paperlab.egorag.report import latency_ratio, loglog_slope


def test_loglog_slope_recovers_known_exponents():
    sizes = np.array([100.0, 1000.0, 100000.0])
    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0, 0.05, (40, 3)))
    linear = loglog_slope(sizes, 1e-6 * sizes * noise, 500)
    flat = loglog_slope(sizes, 1e-3 * noise, 500)
    assert abs(linear.value - 1) < 0.05 and linear.lo > 0.9 and linear.hi < 1.1
    assert abs(flat.value) < 0.05 and flat.hi < 1
    r = latency_ratio(np.full(10, 1.0), np.full(10, 4.0), 200)
    assert abs(r.value - 0.25) < 1e-9


def test_measure_latency_small(tmp_path):
    out = measure_latency([1, 3], 2, 5, tmp_path / "lat", embedder="hash:64", query_embedder=None, repeats=1)
    assert [s["clips"] for s in out["scales"]] == [32, 96]
    assert all(len(s["latency"]["flat"]) == 5 and min(s["latency"]["hierarchical"]) > 0 for s in out["scales"])
    assert not any((tmp_path / "lat").glob("days_*"))            # stores removed once measured


def test_bad_settings_are_one_line_errors():
    import pytest

    from paperlab.core.errors import UserError

    with pytest.raises(UserError, match="clips_per_hour"):
        default_config(True, clips_per_hour=7)
    with pytest.raises(UserError, match="latency_days"):
        default_config(False, latency_days=[7])
    with pytest.raises(UserError, match="answer_methods"):
        default_config(False, answer_methods=["magic"])


def test_answer_choices_with_the_default_model():
    from paperlab.core.models import load_lm
    from paperlab.egorag.answering import answer_choices

    items = [{"question": "Where did I leave the scissors?", "options": ["on the sofa", "in the desk drawer",
                                                                        "on the windowsill", "in my backpack"],
              "query_time": 90000.0, "clips": [(50000.0, "I put the scissors in the drawer of my desk.")],
              "answer": "B"}]
    out = answer_choices(load_lm("default"), items)
    assert len(out) == 1 and set(out[0]) == {"reply", "letter", "correct"}
    assert out[0]["correct"] == (out[0]["letter"] == "B")
