"""A validated Kaggle submission from one or more runs: `python -m src.submit`.

    python -m src.submit --data data/cars --run runs/effb0 --run runs/effb3 --tta --name blend \
        --ensemble-weights fit --out submissions

Predicts every test image with each run's best weights (test-time augmentation with --tta),
averages the runs (equal weights, or weights fitted on their shared holdout predictions,
never on the test set), maps indices back to the competition's own labels, checks the result
against the sample submission (rows, ids and their order, no missing values, known labels)
and writes submissions/NAME.csv, NAME.json (runs, views, weights, holdout scores, versions,
git commit), NAME.holdout.csv, NAME.confusion_matrix.png and NAME.wrong.png. An existing
submission is never replaced unless --overwrite.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from src.config import DataOptions, opt, parse_config
from src.errors import KitError, run_cli
from src.predict import DEFAULT_VIEWS, build_run_model, load_run, predict_views, combine_views


@dataclasses.dataclass
class SubmitConfig(DataOptions):
    """Predict the test set with one or more runs and write a checked submission."""

    run: tuple[str, ...] = opt((), "training run folder; repeat for an ensemble")
    name: str = opt("submission", "file name (without .csv) in --out")
    out: str = opt("submissions", "folder for the submission and its report")
    tta: bool = opt(False, f"test-time augmentation with the default views ({', '.join(DEFAULT_VIEWS)})")
    tta_views: str = opt("", "comma-separated views (identity, hflip, vflip, center_crop_90, scale_110 ...)")
    tta_random: int = opt(0, "extra passes of each run's training augmentation")
    tta_mean: str = opt("arithmetic", "how views are combined", ("arithmetic", "geometric"))
    ensemble_weights: str = opt("equal", "equal, or fit on the runs' shared holdout predictions", ("equal", "fit"))
    metric: str = opt("accuracy", "holdout metric", ("accuracy", "f1_macro", "logloss"))
    overwrite: bool = opt(False, "replace an existing submission of the same name")
    solution: str = opt("", "CSV of true test labels to score against (the demo's solution.csv)")
    upload: bool = opt(False, "submit the written file to Kaggle (python -m src.kaggle_api submit)")
    competition: str = opt("", "competition slug for --upload")
    message: str = opt("", "submission message for --upload; empty: the file's name")
    wait: bool = opt(False, "with --upload: wait for the public score")


def submit(cfg: SubmitConfig) -> dict:
    """Write the submission and its report; return the holdout scores and the file's path."""
    from src.competition import load_competition

    if not cfg.run:
        raise KitError("--run: give at least one training run folder")
    if cfg.upload and not cfg.competition:
        raise KitError("--upload needs --competition SLUG (kaggle.com/competitions/<slug>)")
    out = Path(cfg.out)
    csv_path = out / f"{cfg.name}.csv"
    if csv_path.exists() and not cfg.overwrite:
        raise KitError(f"{csv_path} exists: pass --overwrite to replace it, or another --name")
    runs = [load_run(folder) for folder in cfg.run]
    check_runs_agree(runs, cfg.ensemble_weights)
    comp = load_competition(cfg)
    if comp.test is None or comp.schema is None:
        raise KitError(f"{comp.root}: no sample submission and test images to predict")
    views = chosen_views(cfg)
    holdout, test, scores = predict_all(runs, comp, views, cfg)
    weights = ensemble_weights(holdout, runs, cfg)
    ensemble_holdout, ensemble_score = score_ensemble(runs, holdout, weights, cfg.metric)
    scores.append({"run": "ensemble", "extra_images": "", "views": "+".join(views), "score": ensemble_score})
    labels = runs[0].class_map.decode(sum(w * p for w, p in zip(weights, test)).argmax(axis=1))
    frame = pd.DataFrame({comp.schema.id_column: list(comp.test["id"]), comp.schema.target_column: labels})
    validate_submission(frame, comp.schema, runs[0].class_map)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    report = pd.DataFrame(scores)
    write_report(cfg, out, runs, views, weights, report, holdout, ensemble_holdout, comp)
    print(report.to_string(index=False))
    print(f"wrote {csv_path} ({len(frame)} rows)")
    result = {"path": str(csv_path), "scores": scores, "weights": weights}
    if cfg.solution:
        result["test_accuracy"] = score_against(frame, cfg.solution, comp.schema)
        print(f"accuracy against {cfg.solution}: {result['test_accuracy']:.4f}")
    if cfg.upload:
        from src.kaggle_api import SubmitFileConfig, submit_file

        result["kaggle"] = submit_file(SubmitFileConfig(cfg.competition, str(csv_path), cfg.message, cfg.wait))
    return result


def chosen_views(cfg: SubmitConfig) -> tuple:
    """Return the TTA views: --tta-views, else the defaults with --tta, else identity only."""
    if cfg.tta_views:
        return tuple(v.strip() for v in cfg.tta_views.split(",") if v.strip())
    return DEFAULT_VIEWS if cfg.tta else ("identity",)


def check_runs_agree(runs, ensemble_weights: str) -> None:
    """Refuse runs with different classes, and fitted weights for runs validated on different images."""
    first = runs[0]
    for run in runs[1:]:
        if run.class_map.values != first.class_map.values:
            raise KitError(f"--run {run.folder} predicts other classes than --run {first.folder}")
        if ensemble_weights == "fit" and not same_holdout(run, first):
            raise KitError(f"--ensemble-weights fit: --run {run.folder} and --run {first.folder} used different "
                           "splits, so their holdout predictions cannot be fitted together; use equal weights")


def same_holdout(a, b) -> bool:
    """Return True when two runs held out exactly the same images."""
    ids = [set(r.split.loc[r.split["split"] == "val", "id"]) for r in (a, b)]
    return ids[0] == ids[1]


def score_ensemble(runs, holdout: dict, weights: list, metric: str):
    """Return (ensemble holdout probabilities, score); runs that held out other images cannot be scored together.

    Then the score is NaN and the probabilities are the first run's (for the report's figures).
    """
    if all(same_holdout(run, runs[0]) for run in runs[1:]):
        probs = sum(w * p for w, p in zip(weights, holdout["tta"]))
        return probs, score(probs, holdout["y"][0], metric)
    print("the runs held out different images: the ensemble has no holdout score; "
          "the report's figures show the first run")
    return holdout["tta"][0], float("nan")


def predict_all(runs, comp, views, cfg: SubmitConfig):
    """Return (holdout TTA probabilities, labels and frames per run; test probabilities per run; score rows)."""
    holdout = {"tta": [], "y": [], "frame": []}
    test, scores = [], []
    for number, run in enumerate(runs, start=1):
        model = build_run_model(run)
        val = holdout_frame(run, comp)
        y = run.class_map.encode(val[run.target])
        per_view = predict_views(run, val, views, cfg.tta_random, model)
        plain = per_view[list(views).index("identity")] if "identity" in views else \
            predict_views(run, val, ("identity",), 0, model)[0]
        tta = combine_views(per_view, cfg.tta_mean)
        holdout["tta"].append(tta)
        holdout["y"].append(y)
        holdout["frame"].append(val)
        # runs with and without --extra-data share the holdout: this column shows what the extra images gave
        extra = int((run.split["source"] == "extra").sum()) if "source" in run.split else 0
        scores += [{"run": str(run.folder), "extra_images": extra, "views": "identity",
                    "score": score(plain, y, cfg.metric)},
                   {"run": str(run.folder), "extra_images": extra, "views": "+".join(views),
                    "score": score(tta, y, cfg.metric)}]
        print(f"[{number}/{len(runs)}] {run.folder}: {len(views) + cfg.tta_random} view(s) over "
              f"{len(comp.test)} test images", flush=True)
        test.append(combine_views(predict_views(run, comp.test, views, cfg.tta_random, model), cfg.tta_mean))
    return holdout, test, scores


def holdout_frame(run, comp) -> pd.DataFrame:
    """Return the run's validation images as rows of the competition's training table (paths, sizes)."""
    ids = sorted(run.split.loc[run.split["split"] == "val", "id"].astype(str))  # one order for every run
    rows = comp.train.set_index(comp.train["id"].astype(str))
    missing = sorted(set(ids) - set(rows.index))
    if missing:
        raise KitError(f"--run {run.folder}: holdout image {missing[0]!r} is not in {comp.root}'s training images")
    return rows.loc[ids].reset_index(drop=True)


def score(probs: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Return the holdout metric: accuracy, macro F1 or log loss."""
    from sklearn.metrics import f1_score, log_loss

    if metric == "accuracy":
        return float((probs.argmax(axis=1) == y).mean())
    if metric == "f1_macro":
        return float(f1_score(y, probs.argmax(axis=1), average="macro"))
    return float(log_loss(y, np.clip(probs, 1e-7, 1), labels=list(range(probs.shape[1]))))


def ensemble_weights(holdout: dict, runs, cfg: SubmitConfig) -> list:
    """Return one weight per run: equal, or fitted to minimise holdout log loss (weights sum to 1)."""
    n = len(runs)
    if cfg.ensemble_weights == "equal" or n == 1:
        return [1.0 / n] * n
    from scipy.optimize import minimize

    stacked = np.stack(holdout["tta"])
    y = holdout["y"][0]  # fitting needs a shared holdout (check_runs_agree)

    def loss(raw):
        w = np.exp(raw) / np.exp(raw).sum()
        probs = np.tensordot(w, stacked, axes=1)
        return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1)).mean()

    best = minimize(loss, np.zeros(n), method="Nelder-Mead")
    return [float(w) for w in np.exp(best.x) / np.exp(best.x).sum()]


def validate_submission(frame: pd.DataFrame, schema, class_map) -> None:
    """Raise naming the first problem: row count, ids and their order, missing values, unknown labels."""
    where = "submission"
    if len(frame) != len(schema.ids):
        raise KitError(f"{where}: {len(frame)} rows, but {schema.path} has {len(schema.ids)}")
    ids = frame[schema.id_column].astype(str).tolist()
    missing = sorted(set(schema.ids) - set(ids))
    if missing:
        raise KitError(f"{where}: id {missing[0]!r} of {schema.path} is missing")
    for row, (got, wanted) in enumerate(zip(ids, schema.ids)):
        if got != wanted:
            raise KitError(f"{where}: row {row + 2} has id {got!r} where {schema.path} has {wanted!r}")
    empty = frame[schema.target_column].isna()
    if empty.any():
        row = int(np.argmax(empty.to_numpy()))
        raise KitError(f"{where}: row {row + 2} (id {ids[row]!r}) has no {schema.target_column}")
    known = set(class_map.values)
    for row, label in enumerate(frame[schema.target_column]):
        if label not in known:
            raise KitError(f"{where}: row {row + 2} (id {ids[row]!r}) has label {label!r}, "
                           f"not one of the competition's classes")


def score_against(frame: pd.DataFrame, solution: str, schema) -> float:
    """Return the share of rows whose label matches a solution CSV (id, true label)."""
    truth = pd.read_csv(solution, dtype={schema.id_column: str})
    merged = frame.astype({schema.id_column: str}).merge(truth, on=schema.id_column, suffixes=("", "_true"))
    if len(merged) != len(frame):
        raise KitError(f"--solution {solution}: its ids do not match the submission's")
    return float((merged[schema.target_column].astype(str) == merged[f"{schema.target_column}_true"].astype(str)).mean())


def write_report(cfg, out: Path, runs, views, weights, report, holdout, ensemble_holdout, comp) -> None:
    """Write NAME.json, NAME.holdout.csv, NAME.confusion_matrix.png and NAME.wrong.png beside the submission."""
    from src.plots import plot_confusion, plot_wrong

    report.to_csv(out / f"{cfg.name}.holdout.csv", index=False)
    manifest = {"runs": [str(r.folder) for r in runs], "stages": [r.stage for r in runs], "views": list(views),
                "random_passes": cfg.tta_random, "mean": cfg.tta_mean, "ensemble_weights": weights,
                "holdout": report.to_dict(orient="records"), "metric": cfg.metric,
                "versions": package_versions(), "git_commit": git_commit()}
    (out / f"{cfg.name}.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    labels = list(runs[0].class_map.values)
    y, frame = holdout["y"][0], holdout["frame"][0]
    plot_confusion(y, ensemble_holdout.argmax(axis=1), labels, out / f"{cfg.name}.confusion_matrix.png")
    plot_wrong(frame, y, ensemble_holdout, labels, out / f"{cfg.name}.wrong.png")


def package_versions() -> dict:
    """Return the versions of the packages a submission depends on."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "efficientnet"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    """Return the kit's git commit, or None outside a checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None) -> dict:
    """Run the job from command-line flags; return its result (notebooks show it)."""
    return submit(parse_config(SubmitConfig, argv))


if __name__ == "__main__":
    sys.exit(run_cli(main))
