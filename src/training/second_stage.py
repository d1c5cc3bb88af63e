"""The stack's second stages beside LightGBM: a regularised logistic regression, the blend, the one kept by out-of-fold.

    fit = fit_logistic(X, y, X_test, folds, logits=["run0_cnn"])   # out-of-fold and test probabilities
    oof, test = blend([lgb.oof, fit.oof], [lgb.test, fit.test], "pauc@0.8")   # mean rank (ranking metrics)
    kept = choose(scores, "pauc@0.8")                                  # the best row's position

Why a linear model: on a few hundred rows with a few dozen positives (ISIC 2024's regime) trees overfit
the table where a logistic regression over standardised features (the runs' probabilities as logits,
the within-patient z-scores) does not; the measured case of issue 38 was LightGBM 0.905 test AUC
against a logistic regression's 0.954 over the same features. Which wins is data-dependent, so each is
scored under the same folds by the competition's metric, and the best kept; the images alone (the runs'
out-of-fold predictions) are candidates too, so the kept result never scores below its best input
out of fold. scikit-learn is imported here, when used.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.inference.reference import compare, reference_answer
from src.core.metric_choice import is_ranking, rank_key
from src.training.boosting import BoostedFit, score_positive

# inverse L2 strength on standardised features: strong, as a few dozen positives call for (C=1 overfit
# tables of ~40 features in the measurements; 0.1 kept the within-patient signal)
LOGISTIC_C = 0.1


def logit(p) -> np.ndarray:
    """Return log(p / (1 - p)), p clipped off 0 and 1: a probability on the scale a linear model adds."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def linear_inputs(X: pd.DataFrame, logits) -> np.ndarray:
    """Return X as floats with the named probability columns turned into logits."""
    out = X.astype(float).copy()
    for column in logits:
        out[column] = logit(out[column])
    return out.to_numpy()


def fit_logistic(X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, folds: np.ndarray, logits=(),
                 c: float = LOGISTIC_C) -> BoostedFit:
    """Return the out-of-fold and test probabilities of an L2 logistic regression on standardised features,
    fitted on every fold but one in turn (the test probability is the folds' mean); its importance is each
    feature's mean |coefficient| (standardised units), so the stack's importance file reads the same."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test_rows = linear_inputs(X, logits), linear_inputs(X_test, logits)
    oof, test = np.zeros(len(y)), np.zeros(len(X_test))
    weights = np.zeros(X.shape[1])
    for fold in np.unique(folds):
        held = folds == fold
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(train[~held], y[~held])
        oof[held] = model.predict_proba(train[held])[:, 1]
        test += model.predict_proba(test_rows)[:, 1] / len(np.unique(folds))
        weights += np.abs(model[-1].coef_[0]) / len(np.unique(folds))
    return BoostedFit(oof, test, pd.Series(weights, index=X.columns), [])


def blend(oofs: list, tests: list, metric: str) -> tuple:
    """Return (out-of-fold, test) of several second stages blended: the mean of their ranks (0..1) for a ranking
    metric (auc, pauc@R: only the order counts, and ranks put trees and a linear model on one scale), else
    the mean probability. No weight is fitted, so the blend's out-of-fold score is as honest as its parts'."""
    def mean_of(parts):
        if is_ranking(metric):
            return np.mean([pd.Series(p).rank(pct=True).to_numpy() for p in parts], axis=0)
        return np.mean(parts, axis=0)

    return mean_of(oofs), mean_of(tests)


def choose(scores: list, metric: str) -> int:
    """Return the position of the best score by the metric's direction (NaN last); the first of equals, so an
    input listed before the second stages is kept unless one is better."""
    return min(range(len(scores)), key=lambda i: (rank_key(scores[i], None, metric), i))


def describe(key: tuple, cfg, groups) -> str:
    """Return one candidate's words in the scores table: what it is and how it was scored."""
    features, model = key
    cv = f"({cfg.folds}-fold CV)"
    if features == "images":
        runs = " + ".join(str(g.folder) for g in groups) if model == "mean" else model
        return f"images alone: {runs} (their K-fold CV)"
    mean = "rank" if is_ranking(cfg.metric) else "probability"
    how = {"lightgbm": "LightGBM", "logistic": "logistic regression",
           "blend": f"blend of LightGBM and logistic regression (mean {mean})"}
    return f"{features}{': table and runs' if features == 'stack' else ''}, {how[model]} {cv}"


def score_table(cfg, groups, y, fits) -> pd.DataFrame:
    """Return one row per candidate: out-of-fold score (and test score against --solution), the best one kept.

    The kept row's words start with "ensemble:" (the ledger's submission score is that row's).
    """
    truth = read_solution(cfg.solution) if cfg.solution else None
    rows = []
    for key, fit in fits.items():
        row = {"features": key[0], "model": key[1], "run": describe(key, cfg, groups),
               "score": score_positive(fit["oof"], y, cfg.metric)}
        if truth is not None:
            row["test_score"] = score_positive(fit["test"], truth, cfg.metric)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["kept"] = frame.index == choose(frame["score"].tolist(), cfg.metric)
    frame.loc[frame["kept"], "run"] = "ensemble: kept, " + frame.loc[frame["kept"], "run"]
    return frame


def say_scores(cfg, scores: pd.DataFrame, y: np.ndarray) -> bool:
    """Print each candidate's out-of-fold score in one line, the kept one marked, why it was kept, and the kept
    score beside the trivial answer's (the positive rate for every row); return True when it is no better."""
    print(f"out-of-fold {cfg.metric}" + (" (test: --solution)" if "test_score" in scores else "") + ":")
    for row in scores.itertuples():
        test = f"  test {row.test_score:.4f}" if "test_score" in scores else ""
        words = row.run.removeprefix("ensemble: kept, ")
        print(f"  {words:<78} {row.score:.4f}{test}{'  <- kept' if row.kept else ''}")
    kept = scores[scores["kept"]].iloc[0]
    if kept["features"] == "images":
        print(f"kept: the images alone ({kept['model']}): no second stage beat their out-of-fold {cfg.metric} "
              f"({kept['score']:.4f}); the submission is their test prediction")
    else:
        print(f"kept: {kept['run'].removeprefix('ensemble: kept, ')}: out-of-fold {cfg.metric} {kept['score']:.4f}, "
              "the best of the candidates above; the submission is its test prediction")
    line, worse = compare(kept["score"], reference_answer(cfg.metric, y, y, 2), cfg.metric, "the stack")
    print(line, flush=True)
    return worse


def read_solution(path) -> np.ndarray:
    """Return the 0/1 test labels of a solution CSV (id, target), in its row order (the sample's)."""
    frame = pd.read_csv(path)
    return frame.iloc[:, 1].astype(int).to_numpy()
