"""The auto run (the job behind `python -m src.auto`): measure, plan, screen, train, predict, keep the best.

    run_auto(AutoConfig(data="data/demo", budget="6m", weights="none"))

Each step is planned from seconds measured on this hardware (src.autopilot.planning) and re-planned from
the times measured so far; each composes a kit job (screen, train / train_folds, submit). OUT holds
auto_state.json (src.runs.auto_state): the same command after a kill continues from it, the finished
steps kept. A submission replaces OUT/submission.csv only when it scores better on the holdout (out of
fold for K-fold runs); the last line printed names the file.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from src.core.auto_settings import AutoConfig, budget_seconds
from src.core.errors import KitError, interrupts_kept
from src.core.files import check_writable
from src.core.metric_choice import settle_metric
from src.core.settings import TrainConfig
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.data.splits import prepare_split
from src.hardware.accelerator import pick_accelerator
from src.inference.formats import default_metric
from src.models.backbones import parse_backbones
from src.models.recipe import make_loss
from src.runs.auto_state import AutoState
from src.autopilot.planning import (Counts, Speed, describe_plan, make_plan, measure,
                                   write_plan)
from src.autopilot.auto_jobs import run_blend, run_head, run_screen, run_second, run_submit, run_training
from src.autopilot.auto_table import run_stack, settle_table

PRETRAINED = "efficientnet_b0,resnet50,mobilenetv3_large"
FROM_SCRATCH = "small_resnet"  # keras.applications networks from random weights sit at chance (docs/backbones.md: small_resnet)


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
    kind.auto_steps(False)  # a kind without steps is refused before anything is measured
    cfg, _ = settle_metric(cfg, default_metric(comp.schema, class_map), kind)
    cfg, table = settle_table(cfg, comp, kind)
    steps = kind.auto_steps(table.stack)
    if "holdout" in steps and cfg.max_folds:  # a kind that trains no K folds (masks): one holdout, however long
        print(f"folds: one holdout, not up to --max-folds {cfg.max_folds}: {kind.answer} trains no K-fold runs")
        cfg = dataclasses.replace(cfg, max_folds=0)
    cfg = dataclasses.replace(cfg, split_file=cfg.split_file or str(out / "split.csv"))
    state = AutoState.load(out, cfg)
    data = prepare_split(cfg)
    counts = Counts(len(data.train), len(data.val), len(comp.test))
    accelerator = pick_accelerator(request=cfg.accelerator)
    cfg = fit_batch(cfg, counts, accelerator.replicas)
    speeds = measured_speeds(cfg, state, comp, class_map, accelerator)
    plan = make_plan(budget_seconds(cfg.budget), time.monotonic() - started, counts, speeds, cfg.max_folds,
                     cfg.margin, cfg.startup_seconds, "screen" in steps and not state.done("screen"), cfg.max_epochs,
                     "stack" in steps, "head" in steps)
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
                         cfg.margin, cfg.startup_seconds, False, cfg.max_epochs, "stack" in steps, "head" in steps)
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
    if runs and not plan.has("stack"):  # with a table the stack takes the time a second backbone would
        more = run_head(cfg, state, plan, speed, counts, deadline, runs) if "head" in steps else []
        more += run_second(cfg, state, plan, speeds, counts, data, deadline, table, callbacks, runs)
        run_blend(cfg, state, runs, more, speed, counts, plan.folds, deadline)
    return finish(state, out, started)


def fit_batch(cfg, counts, replicas: int):
    """Return cfg with a batch per replica that the smallest training set planned can fill: on JAX and over several
    GPUs every training batch is full (replicas x batch images; src.hardware.accelerator), and a tiny competition
    on eight devices has fewer training images than 8 x 32. Said when it changes; an error when not one image per
    replica fits."""
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
        with interrupts_kept():  # a Ctrl-C swallowed by a garbage-collection callback still ends the job
            speed = measure(spec, image_sizes(comp, spec), len(class_map.values), cfg.batch_size, accelerator,
                            cfg.measure_batches, kind_network(spec, class_map))
        print(f"measure {spec.name} at {speed.sizes}: " + (speed.error or ", ".join(
            f"{1000 * t:.2f} ms to train / {1000 * p:.2f} ms to predict an image at {s[0]}x{s[1]}"
            for s, t, p in zip(speed.sizes, speed.train, speed.predict))), flush=True)
        state.speeds[spec.name] = dataclasses.asdict(speed)
        state.save()
        speeds.append(speed)
    return speeds


def kind_network(spec, class_map):
    """Return network(size) -> (model, loss): the network and loss the task kind trains (src.training.stages builds
    the same), so a step is planned from the seconds of what it will train (a U-Net for masks, not a classifier)."""
    kind = kind_of(class_map)
    train_cfg = TrainConfig(backbone=spec.name, weights="none")

    def network(size):
        model = kind.build_network(train_cfg, spec, size, class_map, len(class_map.values), "none", True)
        return model, make_loss(train_cfg, "sum_over_batch_size", kind, class_map.scale)

    return network


def finish(state, out: Path, started: float) -> dict:
    """Print the steps (planned against actual minutes) and, last, the submission file; return the summary."""
    state.sessions_seconds(time.monotonic() - started)
    for name, step in state.steps.items():
        print(f"{name}: {step.get('status')}, planned {step.get('planned_minutes', float('nan')):.2f} min, actual "
              f"{step.get('minutes', float('nan')):.2f} min, score {step.get('score')}")
    if not state.best:
        refused = [s.get("candidate") for s in state.steps.values() if s.get("no_better")]
        raise KitError(f"no submission: every candidate ({', '.join(map(str, refused))}) scored no better on the "
                       "holdout than the trivial answer, so none was kept; more --budget, pretrained --weights or "
                       f"another backbone may help ({state.path})" if refused else
                       f"no submission: no model finished within the budget ({state.path})")
    print(f"submission: {state.best['file']} (holdout {state.metric} {state.best['score']:.4f})")
    return {"file": state.best["file"], "score": state.best["score"], "steps": state.steps}
