"""The markers as numbers, and the feature baseline on the real held-out threads."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.core.stats import auroc_ci
from paperlab.derailment.data import Comment, Thread, load_threads, split_threads
from paperlab.derailment.features import (
    ASSOCIATION_FEATURES,
    BASE_FEATURES,
    FeatureClassifier,
    comment_markers,
    prefix_features,
)


def test_comment_markers_count_the_papers_markers():
    m = comment_markers("You never listen. Your patch doesn't work and I can't use it!")
    assert (m.second_person, m.negation, m.first_person, m.exclamations) == (2, 3, 1, 1)
    m = comment_markers("Any update on this? It is still broken after months. This is ridiculous and frustrating.")
    assert m.impatience >= 3 and m.frustration == 2 and m.questions == 1


def test_code_urls_and_quotes_are_not_the_authors_words():
    text = "> you you you never\n```\nyou = not_none\n```\nSee https://x.y/you and `you`. Thanks"
    m = comment_markers(text)
    assert (m.second_person, m.negation, m.polite) == (0, 0, 1)


def test_prefix_features_dynamics_and_escalation():
    calm = [Comment("op", "Thanks for the great library, here is a small bug report."),
            Comment("dev", "Thanks, I will take a look.")]
    heated = calm + [Comment("op", "You still have not fixed it. You never answer. Why?"),
                     Comment("dev", "No, you did not read the docs.")]
    f0, f1 = prefix_features(calm), prefix_features(heated)
    assert set(f0) == set(BASE_FEATURES)
    assert f1["escalation_second_person"] > 0 and f0["escalation_second_person"] == 0
    assert f1["op_share"] == 0.5 and f1["alternation"] == 1.0 and f1["op_last"] == 0.0
    with_assoc = prefix_features([Comment("op", "x", "NONE"), Comment("dev", "y", "MEMBER")], association=True)
    assert set(with_assoc) == set(BASE_FEATURES + ASSOCIATION_FEATURES)
    assert with_assoc["outsider_share"] == 0.5 and with_assoc["op_outsider"] == 1.0
    with pytest.raises(ValueError):
        prefix_features([])


@pytest.fixture(scope="module")
def split():
    return split_threads(load_threads(), 0.3, seed=0)


@pytest.fixture(scope="module")
def clf(split):
    return FeatureClassifier().fit(split.train)


def test_baseline_separates_held_out_threads(split, clf):
    y = [t.label for t in split.test]
    prob = clf.predict_proba([t.prefix for t in split.test])
    assert np.all((prob >= 0) & (prob <= 1))
    assert auroc_ci(y, prob, n_boot=300).lo > 0.5
    assert clf.association is False  # the derailed file lacks author_association: auto leaves the features out
    shuffled = FeatureClassifier().fit(split.train[::-1])
    assert np.allclose(shuffled.predict_proba([t.prefix for t in split.test]), prob, atol=1e-6)


def test_prediction_never_sees_the_toxic_comment(split, clf):
    t = next(t for t in split.test if t.source == "derailed")
    i = t.first_toxic
    changed = Thread(t.id, t.comments[:i] + (Comment("troll", "You idiot, you never ever listen!!!", toxic=True),),
                     t.source)
    assert clf.predict_proba([changed.prefix])[0] == clf.predict_proba([t.prefix])[0]


def test_association_auto_uses_them_when_every_thread_has_them(split):
    known = [t for t in split.train if t.has_association]
    assert FeatureClassifier().fit(known).association is True
    assert FeatureClassifier(association=False).fit(known).association is False
