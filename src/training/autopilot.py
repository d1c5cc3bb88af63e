"""The auto run (the job behind `python -m src.auto`): measure, plan, screen, train, predict, keep the best.

    run_auto(AutoConfig(data="data/demo", budget="6m", weights="none"))

Each step is planned from seconds measured on this hardware (src.training.planning) and re-planned from
the times measured so far; each composes a kit job (screen, train / train_folds, submit). OUT holds
auto_state.json (src.training.auto_state): the same command after a kill continues from it, the finished
steps kept. A submission replaces OUT/submission.csv only when it scores better on the holdout (out of
fold for K-fold runs); the last line printed names the file.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from src.core.auto_settings import AutoConfig, budget_seconds
from src.core.errors import KitError
from src.core.files import check_writable
from src.core.metric_choice import settle_metric
from src.core.settings import ScreenConfig, TrainConfig
from src.core.submit_settings import SubmitConfig
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.data.splits import prepare_split
from src.hardware.accelerator import pick_accelerator
from src.inference.formats import default_metric
from src.inference.submission import submit
from src.models.backbones import parse_backbones
from src.pipeline.sampling import sampling_hint
from src.runs.folder import RunFolder
from src.runs.auto_state import AutoState, candidate_score
from src.training.cross_validation import train_folds
from src.training.planning import (Counts, Speed, describe_plan, kind_steps, make_plan, measure, predict_seconds,
                                   write_plan)
from src.training.auto_table import run_stack, settle_table
from src.training.screening import screen
from src.training.two_stage import train

PRETRAINED = "efficientnet_b0,resnet50,mobilenetv3_large"
FROM_SCRATCH = "small_resnet"  # keras.applications networks from random weights sit at chance (DESIGN.md)


def run_auto(cfg: AutoConfig, callbacks=()) -> dict:
    """Run the plan within cfg.budget; return what was kept (the submission file, its score, the steps)."""
    started = time.monotonic()
    deadline = started + budget_seconds(cfg.budget)
    out = check_writable(Path(cfg.out))
    comp = load_competition(cfg)
    if comp.test is None or comp.schema is None:
        raise KitError(f"{comp.root}: no sample submission and test images: src.auto needs both")
    class_map = comp.class_maps[comp.target]
    kind = kind_of(class_map)
    kind_steps(kind.name)  # a kind without steps is refused before anything is measured
    cfg, _ = settle_metric(cfg, default_metric(comp.schema, class_map), kind)
    cfg, table = settle_table(cfg, comp, kind)
    steps = kind_steps(kind.name, table.stack)
    cfg = dataclasses.replace(cfg, split_file=cfg.split_file or str(out / "split.csv"))
    state = AutoState.load(out, cfg)
    data = prepare_split(cfg)
    counts = Counts(len(data.train), len(data.val), len(comp.test))
    accelerator = pick_accelerator(request=cfg.accelerator)
    cfg = fit_batch(cfg, counts, accelerator.replicas)
    speeds = measured_speeds(cfg, state, comp, class_map, accelerator)
    plan = make_plan(budget_seconds(cfg.budget), time.monotonic() - started, counts, speeds, cfg.max_folds,
                     cfg.margin, cfg.startup_seconds, "screen" in steps and not state.done("screen"), cfg.max_epochs,
                     "stack" in steps)
    print(describe_plan(plan), flush=True)
    write_plan(plan, out)
    state.set_plan(plan.rows)
    backbone = state.steps.get("screen", {}).get("backbone") or plan.backbones[0]
    screening = any(r["step"] == "screen" for r in plan.rows)
    if len(plan.backbones) > 1 and not screening and not state.done("screen"):
        print(f"screen: not planned (it would take over a sixth of the budget); {backbone}, the first that fits, "
              "is trained")
    if screening or state.done("screen"):
        backbone = run_screen(cfg, state, plan, out, accelerator)
        speed = next(s for s in speeds if s.backbone == backbone)
        plan = make_plan(budget_seconds(cfg.budget), time.monotonic() - started, counts, [speed], cfg.max_folds,
                         cfg.margin, cfg.startup_seconds, False, cfg.max_epochs, "stack" in steps)
        print("re-planned from the measured minutes:\n" + describe_plan(plan), flush=True)
        write_plan(plan, out, "plan-after-screen")
    speed = next(s for s in speeds if s.backbone == backbone)
    trained_before = state.done("train")
    runs = run_training(cfg, state, plan, speed, counts, data, deadline, table, callbacks)
    if runs and trained_before and state.done("submit"):
        print(f"submit: finished earlier from {', '.join(map(str, runs))}, {state.best.get('file')} kept")
    elif runs:
        run_submit(cfg, state, runs, speed, counts, plan.folds, deadline)
    if runs and plan.has("stack") and state.done("train"):  # a cut K-fold run has no whole out-of-fold predictions
        run_stack(cfg, state, runs[0], plan, deadline)
    return finish(state, out, started)


def fit_batch(cfg, counts, replicas: int):
    """Return cfg with a batch per replica that the smallest training set planned can fill: on JAX and under a
    strategy every batch is full (replicas x batch images), and a tiny competition on eight devices has fewer
    training images than 8 x 32. Said when it changes; an error when not one image per replica fits."""
    k = [f for f in (cfg.max_folds, 3) if f and f <= cfg.max_folds]
    smallest = min([counts.train] + [counts.labelled * (f - 1) // f for f in k])
    batch = min(cfg.batch_size, smallest // max(replicas, 1))
    if batch < 1:
        raise KitError(f"{replicas} replica(s) need at least {replicas} training images per batch and the smallest "
                       f"training set planned has {smallest}: run on fewer devices (--accelerator cpu)")
    if batch < cfg.batch_size:
        print(f"batch: {batch} image(s) per replica, not --batch-size {cfg.batch_size}: {replicas} replica(s) fill "
              f"every batch and the smallest training set planned has {smallest} images")
    return dataclasses.replace(cfg, batch_size=batch)


def default_backbones(cfg: AutoConfig) -> str:
    """Return the candidates: --backbones, else pretrained ones, else (--weights none) the kit's own network."""
    return cfg.backbones or (FROM_SCRATCH if cfg.weights == "none" else PRETRAINED)


def image_sizes(comp, spec) -> tuple:
    """Return (stage-1 size, stage-2 size) from the images' own sizes: stage 2 near their median side (multiples of
    8, at most the backbone's own size), stage 1 two thirds of it; never under the architecture's least."""
    side = float(np.median(np.minimum(comp.train["width"], comp.train["height"])))
    top = max(spec.default_size)
    two = int(min(max(8 * round(side / 8), 16, spec.min_size), top))
    one = int(max(8 * round(two * 2 / 3 / 8), 16, spec.min_size))
    return (one, one), (two, two)


def measured_speeds(cfg, state, comp, class_map, accelerator) -> list:
    """Return every candidate's Speed: kept from auto_state.json, else timed now (and saved)."""
    speeds = []
    for spec in parse_backbones(default_backbones(cfg)):
        kept = state.speeds.get(spec.name)
        if kept:
            speeds.append(Speed(**{**kept, "sizes": tuple(map(tuple, kept["sizes"])), "train": tuple(kept["train"]),
                                   "predict": tuple(kept["predict"])}))
            print(f"measure {spec.name}: kept from {state.path}")
            continue
        speed = measure(spec, image_sizes(comp, spec), len(class_map.values), cfg.batch_size, accelerator,
                        cfg.measure_batches)
        print(f"measure {spec.name} at {speed.sizes}: " + (speed.error or ", ".join(
            f"{1000 * t:.2f} ms to train / {1000 * p:.2f} ms to predict an image at {s[0]}x{s[1]}"
            for s, t, p in zip(speed.sizes, speed.train, speed.predict))), flush=True)
        state.speeds[spec.name] = dataclasses.asdict(speed)
        state.save()
        speeds.append(speed)
    return speeds


def run_screen(cfg, state, plan, out: Path, accelerator) -> str:
    """Screen the candidates on cached features by the metric; return the winner (kept on resume)."""
    if state.done("screen"):
        print(f"screen: finished earlier, {state.steps['screen']['backbone']} kept")
        return state.steps["screen"]["backbone"]
    row = next(r for r in plan.rows if r["step"] == "screen")
    size = tuple(int(v) for v in row["size"].split("x"))
    screen_cfg = ScreenConfig(**shared(cfg), backbones=",".join(plan.backbones), epochs=3, mode="features",
                              augment="none", weights=cfg.weights, out=str(out / "screen"),
                              features_cache=str(out / "features"), resume=True, metric=cfg.metric,
                              image_size=size, batch_size=cfg.batch_size, accelerator=cfg.accelerator)
    with state.step("screen", row["minutes"]) as record:
        table = screen(screen_cfg)
        good = table[table["error"] == ""]
        record.update(backbone=str(good.iloc[0]["backbone"]), score=float(good.iloc[0]["best_score"]))
    return record["backbone"]


def shared(cfg) -> dict:
    """Return the data settings every job of the auto run shares (one split file, one seed)."""
    names = ("data", "labels_csv", "id_column", "label_column", "images_dir", "test_dir", "val_fraction",
             "group_column", "min_class_count", "seed", "strict_images", "split_file")
    return {name: getattr(cfg, name) for name in names}


def recipe(cfg, data, epochs: tuple, table) -> dict:
    """Return the recipe options the auto run trains with, each said with why."""
    options, why = {"schedule": "cosine"}, ["cosine: the schedule sized to the planned epochs"]
    if min(epochs[0], epochs[1] if epochs[1] else epochs[0]) >= 3:
        options["lr_warmup_epochs"] = 1.0
        why[0] = "cosine with a warm-up epoch: the schedule sized to the planned epochs"
    if cfg.weights == "none":  # from scratch: the demo's rates (the reference 1e-6 is for pretrained weights)
        options.update(stage1_lr=3e-3, stage2_lr=1e-3)
        why.append("rates for random weights")
    probe = dataclasses.replace(TrainConfig(), sampling="natural")
    if sampling_hint(probe, data.comp.train[data.target], data.class_map, cfg.metric):
        options["sampling"] = "balanced"
        why.append("balanced: a class under 5% and a ranking metric")
    if table.metadata:
        options["metadata"] = True
        why.append("metadata: the table's features beside the image's")
    flags = ", ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in options.items())
    print(f"recipe: {flags} ({'; '.join(why)})", flush=True)
    return options


def run_training(cfg, state, plan, speed: Speed, counts, data, deadline: float, table, callbacks) -> list:
    """Train the planned run (K folds or one holdout) until its reserve for prediction; return the run folders to
    submit: the run, or what a cut run finished (salvage); [] when no model finished."""
    folder = Path(cfg.out) / f"train-{speed.backbone}"
    row = next(r for r in plan.rows if r["step"] == "train")
    if state.done("train"):
        print(f"train: finished earlier, {folder} kept")
        return [Path(state.steps["train"]["run"])]
    # prediction's measured time, half again for what timed batches miss (decoding, views), and one start-up
    reserve = 1.5 * predict_seconds(speed, counts, plan.folds, cfg.startup_seconds) + cfg.startup_seconds
    hours = max(deadline - reserve - time.monotonic(), 1.0) / 3600
    split = {"split_file": str(Path(cfg.out) / f"split-{plan.folds}folds.csv")} if plan.folds else {}
    train_cfg = TrainConfig(**{**shared(cfg), **split}, backbone=speed.backbone, weights=cfg.weights, out=str(folder),
                            stage1_size=speed.sizes[0], stage2_size=speed.sizes[1], stage1_epochs=plan.epochs[0],
                            stage2_epochs=max(plan.epochs[1], 1), folds=plan.folds, fold=-1, resume=True,
                            time_limit=hours, metric=cfg.metric, batch_size=cfg.batch_size,
                            accelerator=cfg.accelerator, **recipe(cfg, data, plan.epochs, table))
    with state.step("train", row["minutes"]) as record:
        summary = train_folds(train_cfg, callbacks) if plan.folds else train(train_cfg, callbacks)
        record["run"] = str(folder)
        if summary.get("stopped"):
            record["status"] = "cut"
            return salvage(folder, plan.folds)
        record["score"] = summary.get("cv_mean", summary.get("best", {}).get(summary.get("kept", ""), None))
    return [folder]


def salvage(folder: Path, folds: int) -> list:
    """Return the runs to submit from a run --time-limit cut: its finished folds (their test predictions averaged),
    or the run itself with its finished stage 1 kept (a later session resumes stage 2, which then chooses again);
    [] when none finished."""
    kept = []
    for run in [RunFolder(folder).fold(i) for i in range(folds)] if folds else [RunFolder(folder)]:
        state = run.state() if run.state_file.is_file() else None
        if state is None or "stage1" not in state.finished:
            continue
        if not state.kept:
            state.keep("stage1", by="auto: the budget cut stage 2")
            run.save_state(state)
        print(f"the budget cut training: {run.path} is submitted with its {state.kept} weights")
        kept.append(run.path)
    if not kept:
        print("the budget cut training before any model finished: no new submission")
    return kept


def run_submit(cfg, state, runs: list, speed, counts, folds: int, deadline: float) -> None:
    """Predict with --tta auto and keep the submission when it scores better on the holdout than the kept one
    (several runs: a cut K-fold run's finished folds, their test predictions averaged)."""
    seconds = predict_seconds(speed, counts, folds, cfg.startup_seconds)
    if time.monotonic() + seconds > deadline:
        print(f"submit: {seconds / 60:.1f} min of prediction would pass the budget's end; the kept submission stays")
        return
    name = f"auto-{runs[0].name}" if len(runs) == 1 else f"auto-{runs[0].parent.name}-{len(runs)}folds"
    sub_cfg = SubmitConfig(**{k: v for k, v in shared(cfg).items() if k != "split_file"}, run=tuple(map(str, runs)),
                           name=name, out=str(state.path.parent / "candidates"), tta="auto", overwrite=True,
                           metric=cfg.metric, solution=cfg.solution, accelerator=cfg.accelerator,
                           select_runs=False, calibrate="auto")
    with state.step("submit", round(seconds / 60, 2)) as record:
        result = submit(sub_cfg)
        record.update(score=candidate_score(result["scores"]), candidate=result["path"])
        if "test_accuracy" in result:
            record["test_accuracy"] = result["test_accuracy"]
    state.offer(record["candidate"], record["score"], "submit")


def finish(state, out: Path, started: float) -> dict:
    """Print the steps (planned against actual minutes) and, last, the submission file; return the summary."""
    state.sessions_seconds(time.monotonic() - started)
    for name, step in state.steps.items():
        print(f"{name}: {step.get('status')}, planned {step.get('planned_minutes', float('nan')):.2f} min, actual "
              f"{step.get('minutes', float('nan')):.2f} min, score {step.get('score')}")
    if not state.best:
        raise KitError(f"no submission: no model finished within the budget ({state.path})")
    print(f"submission: {state.best['file']} (holdout {state.metric} {state.best['score']:.4f})")
    return {"file": state.best["file"], "score": state.best["score"], "steps": state.steps}
