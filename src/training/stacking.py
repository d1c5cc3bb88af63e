"""The stack: a second stage over K-fold runs' out-of-fold predictions and the table's features (behind src.stack).

    result = stack(StackConfig(data="data/isic24", runs="runs/cnn", group_column="patient_id", name="stack"))

Scored out of fold side by side, under the same folds (grouped by --group-column, stratified by the
target): the images alone (the runs' out-of-fold probabilities, their mean, and each run when several),
the table alone (LightGBM on its features), and three second stages on both: LightGBM, a logistic
regression and their blend (src.training.second_stage). The best by the metric is kept, an input
included, so the kept result never scores below its best input out of fold; each is said in one line
and the choice recorded. Writes OUT/NAME.csv (checked against the sample like every submission),
NAME.json (the ledger's row, with second_stage), NAME.scores.csv (kept marked), NAME.oof.csv and
NAME.importance.csv / .png. A run must be a K-fold run with oof_predictions.csv: a full-fit run has
no out-of-fold predictions and is refused; --pseudo-labels and --soft-labels runs are used and said.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.files import check_writable, staged_files, write_csv, write_json
from src.core.metric_choice import settle_metric
from src.core.plots import plot_importance
from src.core.provenance import git_commit, package_versions
from src.core.run_data import inherit_data_settings
from src.core.stack_settings import check_stack_metric
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.data.table_features import fit_table, read_train_table, table_features, test_side
from src.inference.formats import default_metric, detect_format, fill_submission, positive_index
from src.inference.manifests import manifest_file, now_text
from src.inference.prediction import load_group, predict_views, runs_metric
from src.inference.submission import validate_submission
from src.runs.folder import FOLD_PREFIX, RunFolder
from src.training.boosting import fit_boosted, group_folds
from src.training.second_stage import blend, fit_logistic, say_scores, score_table


def stack(cfg) -> dict:
    """Fit and score every candidate out of fold, keep the best, write its submission and the reports; return the
    scores and the kept candidate."""
    csv_path = Path(cfg.out) / f"{cfg.name}.csv"
    if csv_path.exists() and not cfg.overwrite:
        raise KitError(f"{csv_path} exists: pass --overwrite to replace it, or another --name")
    for folder in cfg.run_list:
        check_stackable(folder, cfg.run_list)
    groups = [load_group(folder) for folder in cfg.run_list]
    if groups:
        cfg, line = inherit_data_settings(cfg, groups[0].members[0].config)
        print(line) if line else None
    opts = DataOptions(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(DataOptions)
                          if hasattr(cfg, f.name)})
    comp = load_competition(opts, with_test=bool(groups))
    if comp.schema is None:
        raise KitError(f"{comp.root}: no sample submission: the stack writes a submission in its format")
    class_map = comp.class_maps[comp.target]
    kind_of(class_map).check_stack(class_map, comp.target)  # a binary label only
    cfg, choice = settle_metric(cfg, default_metric(comp.schema, class_map), kind_of(class_map), *runs_metric(groups))
    check_stack_metric(cfg.metric, {"run": "the runs'", "kaggle": "Kaggle's"}.get(choice.source, "the format's"))
    fmt = detect_format(comp.schema, class_map, "", cfg.metric)
    positive = class_map.values.index(fmt.positive) if fmt.positive is not None else positive_index(class_map)
    ids = comp.train["id"].astype(str).to_numpy()
    y = (class_map.encode(comp.train[comp.target]) == positive).astype(int)
    inputs = stack_inputs(cfg, comp, opts, groups, ids, class_map.values[positive], positive)
    fits = fit_sets(cfg, y, inputs)
    scores = score_table(cfg, groups, y, fits)
    no_better = say_scores(cfg, scores, y)
    write_outputs(cfg, csv_path, comp, class_map, fmt, positive, ids, fits, scores, inputs["features"])
    print(f"wrote {csv_path} ({len(comp.schema.ids)} rows)")
    kept = scores[scores["kept"]].iloc[0]
    return {"path": str(csv_path), "metric": cfg.metric, "scores": scores.to_dict(orient="records"),
            "kept": {"features": kept["features"], "model": kept["model"], "score": float(kept["score"])},
            "no_better": no_better}


def check_stackable(folder: str, listed: list) -> None:
    """Raise naming the run when it has no out-of-fold predictions, with what the stack can use instead; print a
    note when pseudo- or soft labels touched it (its out-of-fold score may flatter it).

    Reads only the folder's files (config.json, fold-<i>/, oof_predictions.csv), so a run that cannot be
    stacked is refused before any network is built.
    """
    run = RunFolder(folder)
    others = [f for f in listed if f != folder]
    without = f"; or stack the others without it (--runs {','.join(others)})" if others else ""
    kfold = RunFolder(run.path.parent)
    if run.path.name.startswith(FOLD_PREFIX) and kfold.oof_file.is_file():
        raise KitError(f"--runs {folder}: one fold of the K-fold run {kfold}, whose {kfold.oof_file.name} holds every "
                       f"training image predicted out of fold: pass --runs {kfold}{without}")
    values = run.config_values()  # no config.json: a KitError naming the folder
    if values.get("full_fit"):
        ref = RunFolder(values["full_fit"])
        kfold = RunFolder(ref.path.parent)
        if ref.path.name.startswith(FOLD_PREFIX) and kfold.oof_file.is_file():
            use = f"name its reference's K-fold run instead: --runs {kfold} (its {kfold.oof_file.name})"
        else:
            use = (f"its reference {ref} is not a fold of a K-fold run, so it has none either: train the recipe with "
                   "--folds K and name that K-fold run")
        raise KitError(f"--runs {folder}: a full-fit run (of {values['full_fit']}: trained on every image), so it "
                       f"has no out-of-fold predictions and the stack has nothing of it to learn from; {use}{without}")
    if not run.folds() or not run.oof_file.is_file():
        raise KitError(f"--runs {folder}: no {run.oof_file.name}: the stack needs every training image predicted out "
                       f"of fold: train with --folds K (every fold) and name that K-fold run{without}")
    added = pseudo_images(run) if values.get("pseudo_labels") else 0
    if added:  # asked for and none confident enough: nothing touched the run, nothing to say
        count = "some" if added < 0 else str(added)
        print(f"note: {folder} trained with --pseudo-labels {values['pseudo_labels']} ({count} test images labelled "
              "by a submission of models that saw every training image): its out-of-fold predictions are used, but "
              "its out-of-fold score (and the stack's) may be a little optimistic")
    if values.get("soft_labels"):
        print(f"note: {folder} trained on --soft-labels {values['soft_labels']} (out-of-fold probabilities in its "
              "targets): its out-of-fold predictions are used, and may be a little optimistic")


def pseudo_images(run: RunFolder) -> int:
    """Return how many pseudo-labelled test images the first fold trained on (its split.csv's source 'pseudo');
    -1 when that file is not there to count, so the note is still said (the config asked for them)."""
    split = run.folds()[0].split_file
    if not split.is_file():
        return -1
    sources = pd.read_csv(split, dtype=str, keep_default_na=False, usecols=lambda c: c == "source")
    return int((sources["source"] == "pseudo").sum()) if "source" in sources else 0


def stack_inputs(cfg, comp, opts, groups, ids, positive_value, positive: int) -> dict:
    """Return the feature frames (train and test), the runs' columns and the group of each training row."""
    table = read_train_table(comp.root, opts, comp.schema)
    absent = pd.Index(ids).difference(table.index)
    if len(absent):
        raise KitError(f"{table.attrs['path']}: no row for training image {absent[0]!r}")
    spec = fit_table(table, exclude=comp.label_columns, group=cfg.group_column)
    spec, test_table = test_side(comp.root, comp.schema, spec, table.attrs["path"])
    X = table_features(table.loc[ids], spec).reset_index(drop=True)
    X_test = table_features(test_table, spec).reset_index(drop=True)
    run_columns = []
    for number, group in enumerate(groups):
        column = f"run{number}_{Path(group.folder).name}"
        X[column], X_test[column] = run_oof(group, ids, f"prob_{positive_value}"), run_test(group, comp, positive)
        run_columns.append(column)
    print(f"stack features: {len(X.columns) - len(run_columns)} from the table ({len(spec.numbers)} numbers, "
          f"{len(spec.categories)} categories{', within ' + cfg.group_column if cfg.group_column else ''}), "
          f"{len(run_columns)} run(s)' out-of-fold probabilities; {len(ids)} training rows", flush=True)
    grouping = table.loc[ids, cfg.group_column].astype(str).to_numpy() if cfg.group_column else None
    return {"X": X, "X_test": X_test, "runs": run_columns, "groups": grouping, "features": spec}


def run_oof(group, ids, column: str) -> np.ndarray:
    """Return the run's out-of-fold probability of the positive class for each training id."""
    path = RunFolder(group.folder).oof_file
    oof = pd.read_csv(path, dtype={"id": str}, keep_default_na=False).set_index("id")
    if column not in oof:
        raise KitError(f"{path}: no column {column}: expected the positive class's probability")
    absent = pd.Index(ids).difference(oof.index)
    if len(absent):
        raise KitError(f"{path}: no out-of-fold prediction for training image {absent[0]!r} ({len(absent)} missing):"
                       " the run was trained on other data or settings")
    return oof.loc[ids, column].astype(float).to_numpy()


def run_test(group, comp, positive: int) -> np.ndarray:
    """Return the run's test probability of the positive class: its folds' mean, no TTA."""
    print(f"{group.folder}: predicting {len(comp.test)} test images with {len(group.members)} fold(s)", flush=True)
    probs = [predict_views(member, comp.test, ("identity",))[0][:, positive] for member in group.members]
    return np.mean(probs, axis=0)


def fit_sets(cfg, y, inputs) -> dict:
    """Return {(features, model): out-of-fold and test probabilities} averaged over the seeds, inputs first.

    The images alone (the runs' mean, and each run when several) come first: an input is kept on a tie. The
    table alone gets LightGBM (a comparison when runs are given); the final features (table and runs, or the
    table alone) get LightGBM, the logistic regression and their blend.
    """
    X, X_test, runs = inputs["X"], inputs["X_test"], inputs["runs"]
    final = "stack" if runs else "table"
    sets = {"table": [c for c in X.columns if c not in runs]} | ({"stack": list(X.columns)} if runs else {})
    fits = {}
    if runs:
        fits[("images", "mean")] = {"oof": X[runs].mean(axis=1).to_numpy(),
                                    "test": X_test[runs].mean(axis=1).to_numpy()}
        for column in runs if len(runs) > 1 else ():
            fits[("images", column)] = {"oof": X[column].to_numpy(), "test": X_test[column].to_numpy()}
    for seed in range(cfg.seeds):
        folds = group_folds(y, inputs["groups"], cfg.folds, seed)
        for name, columns in sets.items():
            add_fit(fits, (name, "lightgbm"), cfg.seeds, fit_boosted(X[columns], y, X_test[columns], folds, cfg.metric,
                                                                     seed, cfg.rounds, cfg.learning_rate, cfg.patience))
        add_fit(fits, (final, "logistic"), cfg.seeds,
                fit_logistic(X[sets[final]], y, X_test[sets[final]], folds, runs))
    trees, linear = fits[(final, "lightgbm")], fits[(final, "logistic")]
    oof, test = blend([trees["oof"], linear["oof"]], [trees["test"], linear["test"]], cfg.metric)
    fits[(final, "blend")] = {"oof": oof, "test": test}
    return fits


def add_fit(fits: dict, key: tuple, seeds: int, fit) -> None:
    """Add one seed's fit to fits[key]: probabilities averaged, importance summed, kept rounds listed."""
    found = fits.setdefault(key, {"oof": 0.0, "test": 0.0, "importance": 0.0, "rounds": []})
    found["oof"] = found["oof"] + fit.oof / seeds
    found["test"] = found["test"] + fit.test / seeds
    found["importance"] = found["importance"] + fit.importance
    found["rounds"] += fit.rounds


def write_outputs(cfg, csv_path, comp, class_map, fmt, positive, ids, fits, scores, spec) -> None:
    """Write the submission (the kept candidate's, checked), NAME.json (the choice recorded), the scores, the kept
    candidate's out-of-fold rows and the importance (LightGBM's gain and the logistic regression's |coefficient|)."""
    kept = scores[scores["kept"]].iloc[0]
    final = fits[(kept["features"], kept["model"])]
    probs = np.zeros((len(comp.schema.ids), 2))
    probs[:, positive], probs[:, 1 - positive] = final["test"], 1 - final["test"]
    frame = fill_submission(comp.schema, probs, class_map, fmt)
    validate_submission(frame, comp.schema, class_map, fmt)
    out = Path(cfg.out)
    check_writable(out)
    stage = "stack" if ("stack", "lightgbm") in fits else "table"
    trees, linear = fits[(stage, "lightgbm")], fits[(stage, "logistic")]
    importance = pd.DataFrame({"gain": trees["importance"], "logistic_coef": linear["importance"]})
    shown = importance["logistic_coef" if kept["model"] == "logistic" else "gain"].sort_values(ascending=False)
    holdout = scores.sort_values("kept", kind="stable")[["run", "score"]]  # the kept row last: the ledger's
    manifest = {"runs": [f"stack of {cfg.runs or 'no run'} + table"], "views": [], "metric": cfg.metric,
                "holdout": holdout.to_dict(orient="records"), "stack": dataclasses.asdict(cfg),
                "second_stage": {"features": kept["features"], "model": kept["model"], "score": float(kept["score"])},
                "table_features": spec.as_record(), "rounds": trees["rounds"], "versions": package_versions(),
                "git_commit": git_commit(), "date": now_text()}
    title = f"{cfg.name}: feature importance ({'logistic |coef|' if shown.name != 'gain' else 'LightGBM gain'})"
    with staged_files(out, cfg.name) as stage_dir:
        write_csv(stage_dir / f"{cfg.name}.scores.csv", scores)
        write_csv(stage_dir / f"{cfg.name}.oof.csv", pd.DataFrame({"id": ids, "oof_probability": final["oof"]}))
        write_csv(stage_dir / f"{cfg.name}.importance.csv",
                  importance.sort_values("gain", ascending=False).rename_axis("feature").reset_index())
        plot_importance(shown, stage_dir / f"{cfg.name}.importance.png", title)
        write_json(manifest_file(stage_dir, cfg.name), manifest)
        write_csv(stage_dir / csv_path.name, frame)
