"""The auto run's plan: times measured on this hardware, then the budget split between its steps.

    kind.auto_steps(stack)                       # the steps a task kind is planned with (src.kinds), or a KitError;
                                                 # "holdout" among them: one holdout, never K folds (masks)
    m = measure(spec, size, classes, cfg, acc)   # seconds per image to train and to predict, a few timed batches
    plan = make_plan(budget, counts, speeds, cfg)  # the steps with their minutes, the candidates dropped and why
    write_plan(plan, out)                        # plan.csv and plan.png

A step is given epochs and folds from seconds per image measured here (never guessed), so what the
plan says fits does fit, within --margin: K folds when the budget allows them, one holdout when not,
and a budget too short for any model is said up front with the shortest one that would do.
"""
from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
import pandas as pd

from src.core.auto_settings import budget_text
from src.core.errors import KitError
from src.core.files import write_csv
from src.core.plots import plot_plan
from src.models.classifier import HeadSpec, build_classifier
from src.models.recipe import make_optimizer

MIN_EPOCHS = (3, 1)        # the shortest run worth a submission: stage 1, stage 2
MAX_EPOCHS = (30, 10)      # the recipe's own (TrainConfig's stage1_epochs, stage2_epochs)
FOLD_EPOCHS = 8            # K folds only when each fold still gets this many stage-1 epochs
STAGE1_SHARE = 0.75        # of a run's training seconds; stage 2 gets the rest
SCREEN_SHARE = 0.15        # the most of the budget screening may take
SCREEN_EPOCHS = 3
TTA_CANDIDATES = 9         # views --tta auto predicts the holdout with (src.core.submit_settings.AUTO_VIEWS)
TTA_KEPT = 3               # views assumed kept for the test images
EPOCH_OVERHEAD = 1.0       # seconds an epoch spends besides its batches (validation set-up, callbacks, checkpoint)
STACK_FOLDS = 5            # the stack's own folds (src.core.stack_settings.StackConfig.folds)
STACK_ROW_SECONDS = 2e-3   # LightGBM's seconds per training row and fold (0.6 s for 616 rows x 5 folds here)


@dataclasses.dataclass
class Speed:
    """Seconds per image of one backbone at its two sizes, measured here; error: why it cannot run."""

    backbone: str
    sizes: tuple               # ((h1, w1), (h2, w2))
    train: tuple = (math.nan, math.nan)     # seconds per training image at each size
    predict: tuple = (math.nan, math.nan)   # seconds per predicted image at each size
    error: str = ""


@dataclasses.dataclass
class Counts:
    """How many images each step sees."""

    train: int      # training images of the holdout split
    val: int        # holdout images
    test: int

    @property
    def labelled(self) -> int:
        return self.train + self.val


@dataclasses.dataclass
class Plan:
    """The steps (rows: step, backbone, size, folds, epochs, minutes, share), the dropped candidates, the verdict."""

    rows: list
    dropped: list            # (backbone, why)
    budget: float            # seconds of this session
    usable: float            # seconds the steps may take (the budget less the margin and what is spent)
    folds: int = 0
    epochs: tuple = MIN_EPOCHS
    backbones: tuple = ()
    notes: list = dataclasses.field(default_factory=list)  # steps of the kind left out, and why

    def has(self, step: str) -> bool:
        return any(r["step"] == step for r in self.rows)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "backbone", "size", "folds", "epochs", "minutes", "share"])


def measure(spec, sizes, classes: int, batch: int, accelerator, batches: int = 3, network=None) -> Speed:
    """Return a backbone's seconds per image to train and to predict at each size: a few timed batches on random
    pixels after one that compiles; out of memory or a failed build becomes the Speed's error, not a crash.
    network(size) -> (model, loss): the task kind's own network (a U-Net for masks), trained on targets of its
    output's shape; None: a classifier with a softmax head."""
    speed = Speed(spec.name, tuple(tuple(s) for s in sizes))
    train, predict = [], []
    try:
        for size in sizes:
            with accelerator.strategy.scope():
                model, loss = network(tuple(size)) if network else \
                    (build_classifier(spec, tuple(size), classes, "none", HeadSpec()), "sparse_categorical_crossentropy")
                model.compile(optimizer=make_optimizer("adam", 1e-3), loss=loss)
            images = batch * accelerator.replicas
            shape = tuple(model.input_shape[1:]) if network else (*size, 3)  # a U-Net's: a multiple of its stride
            x = np.random.default_rng(0).uniform(0, 255, (images, *shape)).astype("float32")
            y = np.arange(images) % classes if network is None else output_targets(model, images)
            train.append(timed(lambda: model.train_on_batch(x, y), batches) / images)
            predict.append(timed(lambda: model.predict_on_batch(x), batches) / images)
            keras.backend.clear_session()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # out of memory, an input too small for the architecture
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        speed.error = f"{'out of memory' if 'resource' in first.lower() or 'memory' in first.lower() else 'failed'}" \
                      f": {type(err).__name__}: {first[:160]}"
        return speed
    speed.train, speed.predict = tuple(train), tuple(predict)
    return speed


def output_targets(model, images: int) -> np.ndarray:
    """Return targets of the model's output shape: the first class (or channel) on, the rest off."""
    y = np.zeros((images, *model.output_shape[1:]), "float32")
    y[..., 0] = 1.0
    return y


def timed(call, repeats: int) -> float:
    """Return the median seconds of call() over repeats, after one untimed call (tracing, compiling)."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def epoch_seconds(speed: Speed, stage: int, train: int, val: int) -> float:
    """Return one epoch's seconds at a stage's size: its training images trained, its holdout predicted."""
    return train * speed.train[stage] + val * speed.predict[stage] + EPOCH_OVERHEAD


def run_seconds(speed: Speed, counts: Counts, folds: int, epochs: tuple, startup: float) -> float:
    """Return the seconds of one two-stage run (every fold with K folds) and its TTA prediction."""
    k = max(folds, 1)
    train, val = (counts.labelled * (k - 1) // k, counts.labelled // k) if folds else (counts.train, counts.val)
    fit = sum(e * epoch_seconds(speed, i, train, val) for i, e in enumerate(epochs))
    return k * (fit + 2 * startup) + predict_seconds(speed, counts, folds, startup)


def predict_seconds(speed: Speed, counts: Counts, folds: int, startup: float) -> float:
    """Return the seconds --tta auto takes: every holdout image at each candidate view, the test at the kept ones."""
    holdout = counts.labelled if folds else counts.val
    return (holdout * TTA_CANDIDATES + counts.test * max(folds, 1) * TTA_KEPT) * speed.predict[1] + startup


def screen_seconds(speeds: list, counts: Counts, startup: float) -> float:
    """Return the seconds of screening on cached features: each candidate's features extracted once, heads trained."""
    return sum(counts.labelled * s.predict[0] + startup for s in speeds)


def stack_seconds(speed: Speed, counts: Counts, folds: int, startup: float) -> float:
    """Return the stack's seconds: the K folds' test predictions (one view) and LightGBM over every labelled row."""
    return startup + counts.test * folds * speed.predict[1] + STACK_ROW_SECONDS * counts.labelled * STACK_FOLDS


def head_seconds(speed: Speed, counts: Counts, startup: float) -> float:
    """Return the seconds of --head ridge: one pass over the labelled images at stage 2's size, then a ridge."""
    return startup + counts.labelled * speed.predict[1]


def fold_epochs(speed: Speed, counts: Counts, seconds: float, folds: int, startup: float,
                max_epochs: tuple = MAX_EPOCHS) -> tuple | None:
    """Return the (stage-1, stage-2) epochs of a run with these folds (0: one holdout) that fits in seconds, or None
    when fewer than the least worth training (FOLD_EPOCHS stage-1 epochs a fold; a holdout MIN_EPOCHS)."""
    fixed = run_seconds(speed, counts, folds, (0, 0), startup)
    k = max(folds, 1)
    train, val = (counts.labelled * (k - 1) // k, counts.labelled // k) if folds else (counts.train, counts.val)
    per_fold = (seconds - fixed) / k
    epochs = tuple(min(top, int(per_fold * share / max(epoch_seconds(speed, i, train, val), 1e-9)))
                   for i, (top, share) in enumerate(zip(max_epochs, (STAGE1_SHARE, 1 - STAGE1_SHARE))))
    least = (min(FOLD_EPOCHS, max_epochs[0]) if folds else min(MIN_EPOCHS[0], max_epochs[0]), MIN_EPOCHS[1])
    return epochs if epochs[0] >= least[0] and epochs[1] >= least[1] else None


def choose_length(speed: Speed, counts: Counts, seconds: float, max_folds: int, startup: float,
                  max_epochs: tuple = MAX_EPOCHS) -> tuple:
    """Return (folds, (stage-1, stage-2 epochs)) of the longest run that fits in seconds, or None when even the
    shortest does not: the most folds giving each FOLD_EPOCHS stage-1 epochs, else one holdout."""
    for folds in [k for k in (max_folds, 3) if k and k <= max_folds] + [0]:
        epochs = fold_epochs(speed, counts, seconds, folds, startup, max_epochs)
        if epochs is not None:
            return folds, epochs
    return None


def make_plan(budget: float, spent: float, counts: Counts, speeds: list, max_folds: int, margin: float,
              startup: float, screen: bool = True, max_epochs: tuple = MAX_EPOCHS, stack: bool = False,
              head: bool = False) -> Plan:
    """Return the plan for what is left of the budget: screening (when there is a choice), training, prediction,
    and with stack the second stage over the folds' out-of-fold predictions (when K folds fit; else said why not);
    with head a ridge on the features and its blend (a holdout run: after K folds, said why not).

    Candidates that failed to measure, or whose shortest run does not fit, are dropped with the reason; with
    none left the KitError names the shortest budget that would do.
    """
    usable = budget * (1 - margin) - spent
    least = tuple(min(a, b) for a, b in zip(MIN_EPOCHS, max_epochs))
    dropped = [(s.backbone, s.error) for s in speeds if s.error]
    fitting = []
    for speed in (s for s in speeds if not s.error):
        shortest = run_seconds(speed, counts, 0, least, startup)
        if shortest > usable:
            dropped.append((speed.backbone, f"too slow: its shortest run takes {shortest / 60:.1f} min, "
                                            f"{max(usable, 0) / 60:.1f} min are left"))
        else:
            fitting.append(speed)
    if not fitting:
        need = min((run_seconds(s, counts, 0, least, startup) for s in speeds if not s.error), default=None)
        why = "; ".join(f"{b}: {w}" for b, w in dropped)
        raise KitError(f"--budget: too short for any model ({why})" +
                       (f"; the shortest budget that would do: {short_budget(need + spent, margin)}"
                        if need is not None else ""))
    rows = []
    screening = screen and len(fitting) > 1 and screen_seconds(fitting, counts, startup) <= SCREEN_SHARE * usable
    if screening:
        seconds = screen_seconds(fitting, counts, startup)
        rows.append(plan_row("screen", ",".join(s.backbone for s in fitting), fitting[0].sizes[0], 0,
                             (SCREEN_EPOCHS, 0), seconds, usable))
    left = usable - sum(r["minutes"] * 60 for r in rows)
    # screened: the slowest candidate, so whichever wins fits (re-planned once it is known); else the first
    best = max(fitting, key=lambda s: run_seconds(s, counts, 0, least, startup)) if screening else fitting[0]
    # the stack's time is kept back first, a holdout run giving it back (nothing to stack on); a head's and its
    # blend's are kept back always (cheap: one pass and two predictions)
    reserve = stack_seconds(best, counts, max_folds, startup) if stack and max_folds else 0.0
    if head:
        left -= head_seconds(best, counts, startup) + 2 * predict_seconds(best, counts, 0, startup)
    length = choose_length(best, counts, left - reserve, max_folds, startup, max_epochs)
    if length is not None and reserve and not length[0]:
        length = choose_length(best, counts, left, max_folds, startup, max_epochs)
    if length is None:  # screening took the time the run needed: no screening
        if screening:
            return make_plan(budget, spent, counts, speeds, max_folds, margin, startup, False, max_epochs, stack, head)
        length = (0, least)
    folds, epochs = length
    training = run_seconds(best, counts, folds, epochs, startup) - predict_seconds(best, counts, folds, startup)
    rows.append(plan_row("train", best.backbone if not screening else "the screen's best",
                         best.sizes, folds, epochs, training, usable))
    rows.append(plan_row("submit", "", best.sizes[1], folds, (0, 0), predict_seconds(best, counts, folds, startup),
                         usable))
    notes = []
    if stack and folds:
        rows.append(plan_row("stack", "LightGBM", best.sizes[1], STACK_FOLDS, (0, 0),
                             stack_seconds(best, counts, folds, startup), usable))
    if head and not folds:
        rows.append(plan_row("head", "ridge", best.sizes[1], 0, (0, 0), head_seconds(best, counts, startup), usable))
        rows.append(plan_row("blend", "", best.sizes[1], 0, (0, 0), 2 * predict_seconds(best, counts, 0, startup),
                             usable))
    elif head:
        notes.append("head: not planned: a ridge is a holdout run and cannot be blended with K folds' out-of-fold "
                     "predictions")
    if stack and not folds:
        notes.append("stack: not planned: it learns from K folds' out-of-fold predictions and the budget allows one "
                     "holdout" + (" (--max-folds 0)" if not max_folds else ""))
    return Plan(rows, dropped, budget, usable, folds, epochs, tuple(s.backbone for s in fitting), notes)


def plan_row(step: str, backbone: str, size, folds: int, epochs: tuple, seconds: float, usable: float) -> dict:
    """Return one row of the plan's table."""
    text = "+".join(f"{s[0]}x{s[1]}" for s in size) if isinstance(size[0], (tuple, list)) else f"{size[0]}x{size[1]}"
    return {"step": step, "backbone": backbone, "size": text, "folds": folds,
            "epochs": "+".join(str(e) for e in epochs if e) or "", "minutes": round(seconds / 60, 2),
            "share": round(seconds / usable, 3) if usable > 0 else math.nan}


def short_budget(seconds: float, margin: float) -> str:
    """Return the shortest budget (as --budget takes it) whose usable part covers seconds."""
    return budget_text(math.ceil(seconds / (1 - margin)))


def describe_plan(plan: Plan) -> str:
    """Return the plan as printed: the table, the margin, the candidates dropped and why."""
    lines = [plan.table().to_string(index=False),
             f"budget {plan.budget / 60:.1f} min; the steps may take {plan.usable / 60:.1f} min (the rest: margin "
             "and what is spent)"]
    lines += [f"dropped {backbone}: {why}" for backbone, why in plan.dropped] + plan.notes
    return "\n".join(lines)


def write_plan(plan: Plan, out, name: str = "plan") -> None:
    """Write OUT/plan.csv and OUT/plan.png (each step's minutes and share of the budget)."""
    write_csv(out / f"{name}.csv", plan.table())
    plot_plan(plan.table(), out / f"{name}.png", f"auto plan: {plan.budget / 60:.1f} min budget")
