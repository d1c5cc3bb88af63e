"""Images and the table together (issue 30): pauc@R, the ISIC 2024 layout, table features, the stack."""
from __future__ import annotations

import numpy as np
import pytest

from src.core.errors import KitError
from src.core.metric_choice import check_metric, is_ranking, kit_name, monitor
from src.inference.metrics import score


# ---------------------------------------------------------------- pauc@R


def test_pauc_matches_a_hand_computed_value_and_its_keras_twin():
    """Scores .9 P, .8 P, .7 N, .6 P, .5 N, .4 N: the ROC climbs from TPR 2/3 to 1 at FPR 1/3, so the
    area above TPR 0.8 is 0.2 * (1 - 1/3) = 0.1333 (Kaggle's scale: 0 to 0.2)."""
    from src.models.epoch_metrics import epoch_metric

    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    probs = np.stack([1 - p, p], axis=1)
    assert score(probs, y, "pauc@0.8") == pytest.approx(0.2 * (1 - 1 / 3))
    assert score(probs[:, ::-1], 1 - y, "pauc@0.8", positive_index=0) == pytest.approx(0.2 * (1 - 1 / 3))
    assert score(np.stack([1 - y, y], 1).astype(float), y, "pauc@0.8") == pytest.approx(0.2)
    assert score(np.stack([y, 1 - y], 1).astype(float), y, "pauc@0.9") == pytest.approx(0.0)
    metric = epoch_metric("pauc@.80", 2, 1)
    metric.update_state(y, probs.astype("float32"))
    assert metric.name == "pauc_at_0_8" and float(metric.result()) == pytest.approx(0.2 * (1 - 1 / 3), abs=1e-4)
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.clip(rng.random(300) * 0.7 + y * 0.3, 0, 1)
    metric = epoch_metric("pauc@0.8", 2, 1)
    metric.update_state(y, np.stack([1 - p, p], 1).astype("float32"))
    assert float(metric.result()) == pytest.approx(score(np.stack([1 - p, p], 1), y, "pauc@0.8"), abs=2e-3)


def test_pauc_is_one_spelling_a_ranking_metric_and_kaggles_name():
    assert check_metric("pauc@.80") == "pauc@0.8" and monitor("pauc@0.8") == "val_pauc_at_0_8"
    assert is_ranking("pauc@0.8") and is_ranking("auc") and not is_ranking("log_loss")
    assert kit_name("pAUC above 80% TPR") == "pauc@0.8" and kit_name("partial AUC above 90% TPR") == "pauc@0.9"
    for bad in ("pauc@1", "pauc@0", "pauc@0.0", "pauc@R", "pauc@1.5"):
        with pytest.raises(KitError, match="pauc@R"):
            check_metric(bad)
