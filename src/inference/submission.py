"""A validated Kaggle submission from one or more runs: `python -m src.submit`.

    python -m src.submit --data data/cars --run runs/effb0 --run runs/effb3 --tta --name blend \
        --ensemble-weights fit --out submissions

Predicts every test image with each run's best weights (test-time augmentation with --tta),
combines the runs (src.inference.combine: --select-runs, equal or fitted weights, --blend
mean|rank, for log loss a temperature; all fitted on their shared holdout predictions, never
on the test set), maps indices back to the competition's own labels, checks the result
against the sample submission (rows, ids and their order, no missing values, known labels)
and writes submissions/NAME.csv, NAME.json (runs, views, weights, holdout scores, versions,
git commit), NAME.holdout.csv, NAME.confusion_matrix.png and NAME.wrong.png. An existing
submission is never replaced unless --overwrite.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import check_writable, staged_files, write_csv, write_json
from src.core.metric_choice import higher_is_better, settle_metric
from src.core.plots import plot_confusion, plot_tags, plot_wrong
from src.core.provenance import git_commit, package_versions
from src.core.run_data import inherit_data_settings
from src.core.kaggle_settings import SubmitFileConfig
from src.core.submit_settings import AUTO_VIEWS, DEFAULT_VIEWS, SubmitConfig
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.data.pseudo_labels import PROBS_SUFFIX
from src.data.sources import image_source
from src.inference.combine import check_combination, combine_runs, same_holdout
from src.inference.prediction import (build_run_model, holdout_frame, load_group, predict_views,
                                      runs_metric)
from src.inference.checks import check_solution, never_predicted
from src.inference.manifests import manifest_file, now_text
from src.inference.formats import (SubmissionFormat, check_submission, default_metric, detect_format, fill_submission,
                                   positive_index)
from src.inference.metrics import score
from src.inference.reference import judge_submission
from src.inference.references import run_reference
from src.inference.tag_thresholds import tag_table
from src.inference.tta_select import select_views
from src.inference.views import combine_views, with_scales
from src.hardware.accelerator import pick_accelerator
from src.kaggle.client import submit_file
from src.runs.lock import holding


def submit(cfg: SubmitConfig) -> dict:
    """Write the submission and its report; return the holdout scores and the file's path."""
    if not cfg.run:
        raise KitError("--run: give at least one training run folder")
    if cfg.upload and not cfg.competition:
        raise KitError("--upload needs --competition SLUG (kaggle.com/competitions/<slug>)")
    out = Path(cfg.out)
    csv_path = out / f"{cfg.name}.csv"
    if csv_path.exists() and not cfg.overwrite:
        raise KitError(f"{csv_path} exists: pass --overwrite to replace it, or another --name")
    accelerator = pick_accelerator(request=cfg.accelerator)  # all devices predict (JAX: data parallel)
    runs = [load_group(folder) for folder in cfg.run]
    check_runs_agree(runs, cfg.ensemble_weights)
    cfg, inherited = inherit_data_settings(cfg, runs[0].members[0].config)
    if inherited:
        print(inherited)
    comp = load_competition(cfg)
    if comp.test is None or comp.schema is None:
        raise KitError(f"{comp.root}: no sample submission and test images to predict")
    if cfg.solution:
        check_solution(cfg.solution, comp.schema)
    class_map = runs[0].class_map
    missing = never_predicted(comp, class_map)
    cfg, _ = settle_metric(cfg, default_metric(comp.schema, class_map), kind_of(class_map), *runs_metric(runs),
                           classes=len(class_map.values))
    metric = cfg.metric
    fmt = detect_format(comp.schema, class_map, cfg.submission_format, metric)
    kind = kind_of(class_map)
    # identities: nearest neighbours and the new answer (the kind's own submission); the others: the class path
    result = kind.write_submission(cfg, runs, comp, fmt, chosen_views(cfg), validate_submission,
                                   {"hardware": accelerator.as_record(), "never_predicted": missing})
    if result is not None:
        return {**result, **({"kaggle": submit_file(SubmitFileConfig(cfg.competition, result["path"], cfg.message,
                                                                      cfg.wait))} if cfg.upload else {})}
    kind.check_submit(cfg, runs)  # what the kind's answers cannot be averaged or fitted with, refused
    positive = class_map.values.index(fmt.positive) if fmt.positive is not None else positive_index(class_map)
    check_combination(cfg, runs, metric)
    print(f"submission: {fmt.describe()}; holdout metric: {metric}")

    def scorer(probs, y):
        return score(kind.answers(class_map, probs), y, metric, positive)  # a number: clipped to its range

    check_writable(out)  # a read-only --out fails now, not after predicting every image
    # the name is claimed until its files are written: two jobs without --overwrite never both write it
    with holding(out / f".{cfg.name}.lock", f"{csv_path} is being written by another src.submit (process {{pid}}): "
                 "wait for it to finish, or pass another --name"):
        if csv_path.exists() and not cfg.overwrite:  # written while this job predicted
            raise KitError(f"{csv_path} exists: pass --overwrite to replace it, or another --name")
        views = chosen_views(cfg)
        holdout, test, scores = predict_all(runs, comp, views, cfg, scorer, higher_is_better(metric))
        ensemble = combine_runs(runs, holdout, test, cfg, metric, scorer, positive)
        weights, ensemble_holdout, test_probs = ensemble.weights, ensemble.holdout, ensemble.test
        scores += ensemble.rows
        fmt, row = kind.fit_answers(fmt, ensemble_holdout, holdout["y"][0], metric)  # tags: a threshold per tag
        if row is not None:
            scores.append(row)
        verdict = judge_submission(scores, runs[0], comp, holdout["y"][0], metric, positive)
        if verdict:  # the trivial answer beside the submission's holdout score; loud when no better
            print(verdict.pop("line"), flush=True)
        frame = fill_submission(comp.schema, test_probs, class_map, fmt)
        validate_submission(frame, comp.schema, class_map, fmt)
        accuracy, tested = kind.score_solution(frame, cfg.solution, comp.schema, metric) if cfg.solution else \
            (None, None)
        cfg = dataclasses.replace(cfg, submission_format=fmt.name)  # what the report names
        report = pd.DataFrame(scores)
        with staged_files(out, cfg.name) as stage:  # the whole set or none of it (a full disk, a kill)
            # the test probabilities whatever the format: what --pseudo-labels and later blends read
            write_csv(stage / f"{cfg.name}{PROBS_SUFFIX}", pd.DataFrame(
                {"id": list(comp.test["id"].astype(str)),
                 **{f"prob_{v}": test_probs[:, i] for i, v in enumerate(class_map.values)}}))
            write_report(cfg, stage, runs, weights, report, holdout, ensemble_holdout,
                         {"hardware": accelerator.as_record(), "never_predicted": missing, **ensemble.record,
                          **({"verdict": verdict} if verdict else {})}, fmt)
            write_csv(stage / csv_path.name, frame)
        print(shown_table(report, len(runs)))
        print(f"wrote {csv_path} ({len(frame)} rows)")
    result = {"path": str(csv_path), "scores": scores, "weights": weights, "no_better": verdict.get("no_better", False)}
    if tested is not None:  # a number: --metric against the solution; classes: accuracy
        result["test_score"] = tested
        print(f"{metric} against {cfg.solution}: {tested:.4f}")
    elif accuracy is not None:
        result["test_accuracy"] = accuracy
        print(f"accuracy against {cfg.solution}: {accuracy:.4f}")
    if cfg.upload:
        result["kaggle"] = submit_file(SubmitFileConfig(cfg.competition, str(csv_path), cfg.message, cfg.wait))
    return result


def chosen_views(cfg: SubmitConfig) -> tuple:
    """Return the TTA views: --tta-views, else the defaults with --tta, else identity only; each at every --tta-scales.

    With --tta auto: the candidates (identity always among them) that select_views chooses from.
    """
    named = tuple(v.strip() for v in cfg.tta_views.split(",") if v.strip())
    if cfg.tta == "auto":
        return with_scales(tuple(dict.fromkeys(("identity", *(named or AUTO_VIEWS)))), cfg.tta_scales)
    return with_scales(named or (DEFAULT_VIEWS if cfg.tta == "default" else ("identity",)), cfg.tta_scales)


def check_runs_agree(runs, ensemble_weights: str) -> None:
    """Refuse runs with different classes, and fitted weights for runs validated on different images.

    K-fold runs blend only on the same folds: else the split files of both are named.
    """
    first = runs[0]
    for run in runs[1:]:
        if run.class_map.values != first.class_map.values:
            raise KitError(f"--run {run.folder} predicts other classes than --run {first.folder}")
        if ensemble_weights == "fit" and not same_holdout(run, first):
            if run.is_cv and first.is_cv:
                raise KitError(f"--ensemble-weights fit: --run {run.folder} and --run {first.folder} used other "
                               f"folds ({run.members[0].folder.split_file} and {first.members[0].folder.split_file}); "
                               "blend K-fold runs trained on the same split")
            raise KitError(f"--ensemble-weights fit: --run {run.folder} and --run {first.folder} used different "
                           "splits, so their holdout predictions cannot be fitted together; use equal weights")


def predict_holdout(group, comp, views, random_passes: int) -> tuple:
    """Return (holdout frame sorted by id, labels, probabilities per view, models) of a run or K-fold run.

    A K-fold run's holdout is out of fold: each image predicted by the fold that held it out.
    """
    frames, per_views, models = [], [], []
    for member in group.members:
        model = build_run_model(member)
        val = holdout_frame(member, comp)
        frames.append(val)
        per_views.append(predict_views(member, val, views, random_passes, model) if len(val) else  # full-fit
                         np.zeros((len(views) + random_passes, 0, len(group.class_map.values))))
        models.append(model)
    frame = pd.concat(frames, ignore_index=True)
    order = np.argsort(frame["id"].astype(str).to_numpy(), kind="stable")  # one order for every run
    per_view = np.concatenate(per_views, axis=1)[:, order]
    frame = frame.iloc[order].reset_index(drop=True)
    return frame, group.class_map.encode(frame[group.target]), per_view, models


def predict_all(runs, comp, views, cfg: SubmitConfig, scorer, higher_is_better: bool = True):
    """Return (holdout TTA probabilities, labels and frames per run; test probabilities per run; score rows).

    With --tta auto each run keeps the views select_views chose on its own holdout (holdout["steps"]).
    """
    holdout = {"tta": [], "y": [], "frame": [], "views": [], "steps": []}
    test, scores = [], []
    for number, run in enumerate(runs, start=1):
        val, y, per_view, models = predict_holdout(run, comp, views, cfg.tta_random)
        plain = None if not len(y) else per_view[list(views).index("identity")] if "identity" in views else \
            predict_holdout(run, comp, ("identity",), 0)[2][0]  # None: a full-fit, no holdout
        run_views, random_passes, steps = list(views), cfg.tta_random, []
        one_class = len(y) and np.asarray(y).ndim == 1 and len(np.unique(y)) < 2  # a metric ranks nothing there
        if cfg.tta == "auto" and one_class:
            print(f"{run.folder}: --tta auto chooses nothing on a holdout of one class: every view kept, averaged")
        if cfg.tta == "auto" and not one_class:
            names = list(views) + [f"random_{i + 1}" for i in range(cfg.tta_random)]
            chosen, steps = select_views(per_view, names, y, scorer, higher_is_better, cfg.tta_mean)
            per_view = per_view[[names.index(v) for v in chosen]]
            run_views = [v for v in chosen if not v.startswith("random_")]
            random_passes = len(chosen) - len(run_views)
            print(f"{run.folder}: --tta auto kept {'+'.join(chosen)} ({len(steps) - 1} step(s) that helped)")
        tta = combine_views(per_view, cfg.tta_mean)
        views_used = "+".join(run_views + [f"random x{random_passes}"] * (random_passes > 0))
        holdout["views"].append(views_used)
        holdout["steps"].append(steps)
        holdout["tta"].append(tta)
        holdout["y"].append(y)
        holdout["frame"].append(val)
        # runs with and without --extra-data share the holdout: this column shows what the extra images gave;
        # a K-fold run's scores are its CV scores (out of fold)
        name = f"{run.folder} ({len(run.members)}-fold CV)" if run.is_cv else str(run.folder)
        counts = {"extra_images": run.extra_images(), "pseudo_images": run.extra_images("pseudo")}
        reference = run_reference(run)
        if reference is not None:  # trained on every image: its reference run's holdout scored the recipe
            print(f"{run.folder}: {reference['line']}")
            scores.append({"run": f"{name} (full-fit; reference: {reference['run']}'s holdout)", **counts,
                           "views": views_used, "score": reference["value"]})
        else:
            scores += [{"run": name, **counts, "views": "identity", "score": scorer(plain, y)},
                       *({"run": name, **counts, "views": f"auto step {s['step']}: {s['views']}",
                          "score": s["score"]} for s in steps[1:]),
                       *[{"run": name, **counts, "views": views_used, "score": scorer(tta, y)}] *
                       (views_used != "identity")]  # no TTA (or --tta auto kept identity): the row above is it
        print(f"[{number}/{len(runs)}] {run.folder}: {len(run_views) + random_passes} view(s) over "
              f"{len(comp.test)} test images" + (f", {len(run.members)} folds averaged" if run.is_cv else ""),
              flush=True)
        test.append(np.mean([combine_views(predict_views(member, comp.test, run_views, random_passes, model),
                                           cfg.tta_mean) for member, model in zip(run.members, models)], axis=0))
    return holdout, test, scores


def shown_table(report: pd.DataFrame, runs: int) -> str:
    """Return the holdout table as printed: one run's plain "ensemble" row is that run's row again, so it is
    left out (NAME.json and NAME.holdout.csv keep it: the ledger reads a submission's score from it)."""
    return report[(report["run"] != "ensemble") | (runs > 1)].to_string(index=False)


def validate_submission(frame: pd.DataFrame, schema, class_map, fmt=None) -> None:
    """Raise naming the first problem: row count, ids and their order, then the format's values.

    fmt: the SubmissionFormat (src.inference.formats); None: one label per row.
    """
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
    check_submission(frame, schema, class_map, fmt or SubmissionFormat("label", (schema.target_column,)))


def write_report(cfg, out: Path, runs, weights, report, holdout, ensemble_holdout, record: dict, fmt) -> None:
    """Write NAME.json, NAME.holdout.csv and the figures beside the submission.

    record: what NAME.json records besides the scores (hardware, never_predicted classes, calibration, blend).

    Figures: NAME.confusion_matrix.png and NAME.wrong.png; multi-label: NAME.tags.png and NAME.tags.csv
    (precision, recall and threshold per tag).
    """
    write_csv(out / f"{cfg.name}.holdout.csv", report)
    manifest = {"runs": [str(r.folder) for r in runs], "stages": [r.stage for r in runs],
                "views": holdout["views"], "tta": cfg.tta, "tta_selection": holdout["steps"],
                "random_passes": cfg.tta_random, "mean": cfg.tta_mean, "ensemble_weights": weights,
                "holdout": report.to_dict(orient="records"), "metric": cfg.metric, **record,
                "versions": package_versions(), "git_commit": git_commit(), "date": now_text()}
    labels = list(runs[0].class_map.values)
    y, frame = holdout["y"][0], holdout["frame"][0]
    if fmt.thresholds:
        manifest["thresholds"] = dict(zip(map(str, labels), fmt.thresholds))
        write_json(manifest_file(out, cfg.name), manifest)
        tags = tag_table(ensemble_holdout, y, labels, fmt.thresholds)
        write_csv(out / f"{cfg.name}.tags.csv", tags)
        plot_tags(tags, out / f"{cfg.name}.tags.png", f"{cfg.name}: holdout per tag")
        return
    write_json(manifest_file(out, cfg.name), manifest)
    if not len(y) or not kind_of(runs[0].class_map).exclusive_classes(runs[0].class_map):  # no holdout; no classes
        return
    plot_confusion(y, ensemble_holdout.argmax(axis=1), labels, out / f"{cfg.name}.confusion_matrix.png")
    plot_wrong(lambda rows: image_source(frame.iloc[rows]).open_for_figures(), y, ensemble_holdout, labels,
               out / f"{cfg.name}.wrong.png")
