"""Two-stage progressive-resolution fine-tuning (the job behind `python -m src.train`).

The reference recipe: an optional warm-up (head only, backbone frozen); stage 1 with every
layer trainable (BatchNorm kept frozen for pretrained weights, as the Keras fine-tuning guide
advises) at a moderate size, ExponentialDecay and early stopping on the competition's metric
(val_<metric>, ties to the lower val_loss; src.core.metric_choice) restoring the best weights;
stage 2 rebuilt at a higher size from stage 1's best weights with a much lower rate; the final
weights are the better stage's (--final-stage). Everything lands in one RunFolder (src.runs.folder),
its progress in state.json (src.runs.state). `--resume` continues a run
that was cut off, from its last finished epoch (and starts one when there is none, so a
rerun of a notebook or of `make demo` is safe), refusing settings that would change the run;
an out-of-memory error halves the batch size and retries the stage, down to --min-batch-size.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from src.core.errors import KitError
from src.core.files import read_json, write_json
from src.core.provenance import git_commit
from src.core.refit_options import check_refit_files
from src.core.metric_choice import monitor, rank_key, settle_metric
from src.core.task_kind import settle_task
from src.data.class_maps import grade_order
from src.data.extra_data import add_extra_data
from src.data.pseudo_labels import add_pseudo_labels
from src.data.soft_labels import add_soft_labels
from src.data.splits import prepare_split
from src.data.table_features import TABLE_FILE, features_by_id
from src.hardware.accelerator import pick_accelerator
from src.inference.formats import default_metric, positive_index
from src.models.backbones import get_spec
from src.models.spec import check_drop_path
from src.pipeline.sampling import sampling_hint
from src.runs.folder import RunFolder
from src.runs.state import RunState, StageRecord
from src.runs.stages import plan_stages, stage_rates
from src.training.callbacks import STOP_NOT_BEFORE
from src.training.full_fit import full_fit_config, full_fit_stages
from src.training.multitask import task_columns
from src.training.stages import OutOfTime, RunData, run_stage, write_reports


def run_folder_for(cfg) -> RunFolder:
    """Return the run folder a TrainConfig names: --out, else runs/<backbone>."""
    return RunFolder(cfg.out or Path("runs") / get_spec(cfg.backbone).layer_name)


def train(cfg, callbacks=()) -> dict:
    """Run every stage into the run folder; return the summary (best metric value per stage, the stage kept,
    holdout accuracy)."""
    deadline = time.monotonic() + cfg.time_limit * 3600 if cfg.time_limit > 0 else None
    check_refit_files(cfg)
    cfg = full_fit_config(cfg) if cfg.full_fit else cfg  # RUN's settings and epochs, checked before any folder
    spec = get_spec(cfg.backbone)
    check_drop_path(spec, cfg.drop_path)  # before any folder is written
    run = run_folder_for(cfg)
    with run.lock():
        cfg, data = prepare_run(cfg, run)
        accelerator = pick_accelerator(request=cfg.accelerator, steps_per_execution=cfg.steps_per_execution)
        if accelerator.kind == "multi-worker" and cfg.metric != "accuracy":
            raise KitError(f"--metric {cfg.metric}: training on several machines logs accuracy only; use "
                           "--metric accuracy there, or one machine")
        state = run.state()
        state.metric = cfg.metric
        stages, previous = plan_stages(cfg), None
        print(describe_rates(cfg, stages))
        stages = full_fit_stages(cfg, stages) if cfg.full_fit else stages  # each ends at RUN's chosen epoch
        for stage in stages:
            if stage.name in state.finished:
                print(f"{stage.name}: finished earlier, weights in {run.weights(stage.name)}")
            elif deadline is not None and time.monotonic() >= deadline:
                return stopped_by_time(cfg, run, stage.name, 0, stage.epochs)
            else:
                started = time.monotonic()
                try:
                    best = run_stage(stage, cfg, spec, data, run, previous, accelerator, callbacks, deadline)
                except OutOfTime as cut:
                    return stopped_by_time(cfg, run, cut.stage, cut.epochs_done, cut.epochs)
                # A session cut by --time-limit records nothing: only finished stages' seconds are summed.
                state.record_stage(stage.name, best, time.monotonic() - started, accelerator.as_record(),
                                   git_commit())
                run.save_state(state)
                shutil.rmtree(run.top_epochs(stage.name), ignore_errors=True)  # needed until the stage is recorded
            previous = run.weights(stage.name)
        kept, why = (stages[-1], f"full-fit: the reference {cfg.full_fit} kept it") if cfg.full_fit else \
            choose_final_stage(state, stages, cfg.final_stage, cfg.metric)
        state.keep(kept.name, by=cfg.final_stage)
        run.save_state(state)
        summary = write_reports(cfg, spec, data, run, stages, accelerator, kept)
        if "reference_score" in summary:  # said loudly when no better; kept in state.json for the ledger and auto
            state.verdict = {k: summary[k] for k in ("holdout_score", "reference_score", "reference", "no_better")}
            run.save_state(state)
    for name, value in state.by_stage("best").items() if not cfg.full_fit else ():
        loss = state.stages[name].best_val_loss
        loss = float("nan") if loss is None else loss
        print(f"{name}: best {monitor(cfg.metric)} {value:.4f} (val_loss {loss:.4f}), weights {run.weights(name)}")
    print(f"final weights: {kept.name} ({why})")
    accuracy, value = summary.get("holdout_accuracy"), summary.get("holdout_score")
    if not cfg.full_fit and accuracy is not None:
        print(f"holdout accuracy with the final weights: {accuracy:.4f} ({run.holdout_file})")
    if not cfg.full_fit and value is not None and (accuracy is None or cfg.metric != "accuracy"):
        print(f"holdout {cfg.metric} with the final weights: {value:.4f} ({run.holdout_file})")
    if summary.get("line"):
        print(summary.pop("line"), flush=True)
    return {**summary, "best": state.by_stage("best"), "metric": cfg.metric, "kept": kept.name,
            "hardware": state.by_stage("hardware"), "out": str(run.path)}


def describe_rates(cfg, stages) -> str:
    """Return the recipe: line of src.train: each stage's starting rate and where it came from."""
    rates = ", ".join(f"{s.name} at {s.lr:g}" for s in stages)
    return f"recipe: {rates} ({stage_rates(cfg)[2]}; early stopping from {STOP_NOT_BEFORE:.0%} of a stage's epochs on)"


def choose_final_stage(state: RunState, stages: list, rule: str, metric: str) -> tuple:
    """Return (the stage whose weights are final, why): by --final-stage best, the stage with the best score in
    the metric's direction (ties to the lower val_loss, then the later stage); by last, the recipe's last stage.
    The head-only warm-up (--warmup-epochs) is never kept: it is where stage 1 starts, not a stage of its own.
    """
    column = monitor(metric)
    # The head-only warm-up is a step of stage 1, not a candidate: the recipe's choice is stage 1 or stage 2.
    stages = [s for s in stages if s.train_backbone] or stages
    records = {s.name: state.stages.get(s.name, StageRecord()) for s in stages}
    scores = {name: (record.best, record.best_val_loss) for name, record in records.items()}
    listed = ", ".join(f"{name} {value:.4f}" for name, (value, _) in scores.items() if value is not None)
    ranked = sorted(reversed(stages), key=lambda s: rank_key(*scores[s.name], metric))  # stable: later wins ties
    best, last = ranked[0], stages[-1]
    if rule == "last":
        note = "" if best is last else f"; {best.name} scored better: --final-stage best would keep it"
        return last, f"--final-stage last keeps the recipe's last stage; best {column}: {listed}{note}"
    verdict = "the last stage scored best" if best is last else f"{best.name} scored better than {last.name}"
    return best, f"best {column} per stage: {listed}; {verdict} (--final-stage best; last keeps the recipe's)"


def stopped_by_time(cfg, run: RunFolder, stage: str, done: int, epochs: int) -> dict:
    """Say where --time-limit stopped the run and how to continue it; return the summary of a cut run."""
    print(f"--time-limit {cfg.time_limit:g} h: stopped after epoch {done} of {epochs} of {stage}; the run in "
          f"{run.path} is whole. Continue it with the same command and --resume (on Kaggle: the next kernel "
          "version, with this version's output attached)")
    return {"stopped": True, "stage": stage, "epochs_done": done, "out": str(run.path)}


def prepare_run(cfg, run: RunFolder) -> tuple:
    """Check the folder (a new run, or --resume with the same settings); save config, classes and split.

    Returns (the config with its task kind and metric resolved, the RunData every stage trains and validates on).
    """
    resuming = run.is_run()
    run.check_start(cfg.resume)
    before = run.load_config() if resuming else None
    saved = before.metric or "accuracy" if resuming else ""  # runs before --metric: val_accuracy
    saved_task = before.task if resuming else ""  # runs before --task: read from the data again
    if resuming:
        run.check_resume(dataclasses.replace(cfg, metric=cfg.metric or saved, task=cfg.task or saved_task))
    # a resumed run reads its target as it did (a number stays a number without --task again)
    data = prepare_split(dataclasses.replace(cfg, task=cfg.task or saved_task),
                         lambda split, comp: add_training_only(split, comp, cfg))
    if resuming:
        check_same_split(run, data.split)
    heads = {column: data.comp.class_maps[column] for column in task_columns(cfg, data.comp)}
    cfg, kind = settle_task(cfg, data.class_map, saved_task, data.comp.train[data.target].value_counts())
    # the flags the kind cannot take refused, its own lines said: before any file of the run is written, so the
    # corrected command starts clean
    kind.check_settings(cfg, data, heads)
    cfg, _ = settle_metric(cfg, default_metric(data.comp.schema, data.class_map), kind, saved, str(run.config_file),
                           classes=len(data.class_map.values))
    if line := grade_order(cfg.metric, data.class_map, cfg.class_order):
        print(line)
    if cfg.fold <= 0 and (hint := sampling_hint(cfg, data.comp.train[data.target], data.class_map, cfg.metric)):
        print(hint)  # once per run (a K-fold run: with fold 0)
    if not resuming:  # the run's settings are the original ones; a resumed run keeps its files
        run.save_split(data.split)
        run.save_class_maps(data.target, data.comp.class_maps)
        run.save_config(cfg)
    return cfg, RunData(**vars(data), heads=heads, positive=positive_index(data.class_map),
                        table=metadata_table(cfg, run, data.comp) if cfg.metadata else None)


def metadata_table(cfg, run: RunFolder, comp):
    """Return --metadata's features by id, the spec fitted once and kept in the run (a resume applies it again)."""
    path = run.path / TABLE_FILE
    record = read_json(path, "the run's table features") if path.is_file() else None
    spec, features = features_by_id(comp.root, cfg, comp.schema, comp.label_columns, record)
    if record is None:
        write_json(path, spec.as_record())
    print(f"metadata: {features.shape[1]} table features beside the images ({len(spec.numbers)} numbers, "
          f"{len(spec.categories)} categories{', within ' + spec.group if spec.group else ''}; {path.name})")
    return features


def add_training_only(split, comp, cfg):
    """Return the split with --extra-data and --pseudo-labels images added to training (never to the holdout),
    every image on the training side for --full-fit, and --soft-labels' targets."""
    comp.class_maps[comp.target].kind.check_added_images(cfg, comp.target)
    if cfg.extra_data:
        split = add_extra_data(split, comp, cfg)
    if cfg.pseudo_labels:
        split = add_pseudo_labels(split, comp, cfg)
    if cfg.full_fit:  # every image trains; the reference run's holdout scored the recipe
        split = split.assign(split="train")
    if cfg.soft_labels:
        split = add_soft_labels(split, comp, cfg)
    return split


def check_same_split(run: RunFolder, split) -> None:
    """Refuse to resume when the split would differ from the one the run trained on (another seed, other images)."""
    saved = run.split()
    before = dict(zip(saved["id"].astype(str), saved["split"] if "split" in saved else saved["fold"]))
    now = dict(zip(split["id"].astype(str), split["split"] if "split" in saved else split["fold"]))
    if before != now:
        differ = sorted(set(before.items()) ^ set(now.items()))
        raise KitError(f"--resume: the split differs from {run.split_file} ({len(differ)} image(s) moved or "
                       f"changed, first {differ[0][0]!r}): resume with the run's own data and split settings")

