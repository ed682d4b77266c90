"""Section 4.4 metrics agree with scikit-learn on known predictions."""

import numpy as np
import pytest
from sklearn import metrics as sk

from crisis_keras.evaluation.metrics import classification_metrics

CLASSES = ("severe_damage", "mild_damage", "little_or_no_damage")


def test_known_predictions_by_hand():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["num_examples"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # Class 0: P=1, R=2/3, F1=0.8; class 1: P=1/2, R=1/2, F1=1/2;
    # class 2: P=1/2, R=1, F1=2/3.
    f1 = [0.8, 0.5, 2 / 3]
    assert m["per_class"]["severe_damage"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["mild_damage"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["little_or_no_damage"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["severe_damage"]["support"] == 3
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["weighted_f1"] == pytest.approx(np.average(f1, weights=[3, 2, 1]))
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_equal_to_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, size=300))
    names = [f"c{i}" for i in range(5)]
    m = classification_metrics(y_true, y_pred, names)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(
        sk.f1_score(y_true, y_pred, average="weighted")
    )
    np.testing.assert_array_equal(
        m["confusion_matrix"], sk.confusion_matrix(y_true, y_pred, labels=range(5))
    )


def test_absent_class_is_reported_with_zero_support():
    m = classification_metrics([0, 1, 0], [0, 1, 1], CLASSES)
    assert m["per_class"]["little_or_no_damage"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
    }
    assert m["macro_f1"] == pytest.approx(sk.f1_score([0, 1, 0], [0, 1, 1], average="macro"))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        classification_metrics([0, 1], [0], CLASSES)
