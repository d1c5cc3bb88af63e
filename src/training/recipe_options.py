"""The recipe flags' part of a stage's fit: its optimizer plan and the out-of-memory back-off.

    plan = stage_plan(stage, data, accelerator, global_batch, accumulate)   # schedule length, --accumulate
    note = check_plan(cfg, stage, plan, images, global_batch)                # refuses what no epoch reaches
    batch, accumulate = back_off(stage.name, batch, accumulate, min_batch)  # halves one, doubles the other
    callbacks = [backup, *ema_callbacks(cfg), checkpoint, ...]              # --ema: the average is what is kept
    print(describe_recipe(cfg, stage, batch, accumulate))                   # the stage line's words for the flags

Kept apart from src.training.stages so each flag's logic has one small home.
"""
from __future__ import annotations

import keras

from src.core.errors import KitError
from src.models.recipe import StagePlan, steps_per_epoch


def stage_plan(stage, images: int, accelerator, global_batch: int, accumulate: int) -> StagePlan:
    """Return what the stage's optimizer is planned for: its batches per epoch, epochs and --accumulate.

    A --full-fit stage plans its schedule over the reference's planned epochs and stops at the one it kept,
    so its rates follow the reference's epoch by epoch.
    """
    return StagePlan(steps_per_epoch(images, global_batch, accelerator.fixed_batches),
                     stage.schedule_epochs or stage.epochs, accumulate)


def check_plan(cfg, stage, plan: StagePlan, images: int, global_batch: int) -> str:
    """Refuse an --accumulate no epoch reaches; return a line when --ema's average would stay near its start.

    Why: --accumulate 1000 over 4 batches an epoch applied no update at all (the stage's weights came out as
    they went in), and Keras's EMA has no warm-up (each update moves the average by 1 - decay): --ema 0.999
    over 8 updates keeps an average that is 99% the first update's weights. Returns '' when nothing is due.
    """
    batches = plan.steps_per_epoch * stage.epochs
    if plan.accumulate > batches:
        raise KitError(f"--accumulate {plan.accumulate}: more than the {batches} batch(es) of {stage.name} "
                       f"({plan.steps_per_epoch} an epoch: {images} images, batch {global_batch}; {stage.epochs} "
                       f"epoch(s)), so no update would ever be applied; use --accumulate {plan.steps_per_epoch} or "
                       "less, or a smaller --batch-size")
    if plan.accumulate > plan.steps_per_epoch:  # Keras carries the sums over: one update every few epochs
        print(f"note: --accumulate {plan.accumulate} is more than the {plan.steps_per_epoch} batch(es) of an epoch "
              f"of {stage.name}: {batches // plan.accumulate} update(s) in its {stage.epochs} epoch(s)")
    updates = max(1, batches // plan.accumulate)
    kept = cfg.ema ** (updates - 1)  # the first update's weights' share of the average after the last update
    if cfg.ema <= 0 or kept < 0.05:
        return ""
    return (f"note: --ema {cfg.ema:g} over at most {updates} update(s) of {stage.name}: the average stays "
            f"{kept:.0%} the weights of its first update (it forgets them over about {1 / (1 - cfg.ema):.0f} "
            f"updates); --ema {0.05 ** (1 / max(updates - 1, 1)):.2f} or less would average this stage's updates")


def back_off(stage: str, batch: int, accumulate: int, min_batch: int) -> tuple[int, int]:
    """Return (smaller batch, more accumulation) after an out-of-memory error, saying what happens to the recipe.

    The accumulation grows by the batch's shrink, so the effective batch (batch x accumulate, the one
    the learning rate was chosen for) stays, exactly when the batch halves evenly.
    """
    smaller = max(batch // 2, min_batch)
    more = max(1, round(accumulate * batch / smaller))
    kept = "kept" if smaller * more == batch * accumulate else f"was {batch * accumulate}"
    print(f"{stage}: out of memory at batch size {batch}; retrying the stage with batch size {smaller} and "
          f"--accumulate {more} (effective batch {smaller * more}, {kept})")
    return smaller, more


def ema_callbacks(cfg) -> list:
    """Return the callbacks that make --ema's average the weights validated, checkpointed and kept.

    Keras's SwapEMAWeights puts the optimizer's average into the model for validation and, with
    swap_on_epoch, from each epoch's end to the next epoch's start, so early stopping and the best
    checkpoint see the average. Placed after BackupAndRestore: the backup is written before the swap,
    with the raw weights in the model and the average in the optimizer, so --resume continues both.
    The average covers the trainable weights; BatchNorm's moving statistics are the raw run's.
    """
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema > 0 else []


def refuse_on_several_machines(cfg, multi_task: bool) -> None:
    """Refuse, naming the flag, what the kit's multi-machine loop (not Keras's fit) cannot do."""
    refused = {"--targets: multi-task training": multi_task,
               "--ema (its validation swap needs Keras's fit)": cfg.ema > 0,
               "--average-top (its holdout score needs Keras's evaluate)": cfg.average_top > 0,
               "--full-fit (no holdout)": bool(cfg.full_fit)}
    for flag, given in refused.items():
        if given:
            raise KitError(f"{flag} on several machines is not supported")


def describe_recipe(cfg, stage, batch: int, accumulate: int) -> str:
    """Return the stage line's words for the batch and the recipe flags: batch 4 x 2 accumulated, cosine, EMA 0.999,
    backbone at 0.1x the rate, drop path 0.2, mean of the 3 best epochs."""
    words = [f"batch {batch}" + (f" x {accumulate} accumulated" if accumulate > 1 else ""), f"{cfg.schedule} schedule"]
    if cfg.schedule == "cosine" and cfg.lr_warmup_epochs > 0 and stage.train_backbone:
        words[-1] += f" after {cfg.lr_warmup_epochs:g} warm-up epoch(s)"
    flags = {f"EMA {cfg.ema:g}": cfg.ema > 0,
             f"backbone at {cfg.backbone_lr_scale:g}x the rate": cfg.backbone_lr_scale < 1 and stage.train_backbone,
             f"drop path {cfg.drop_path:g}": cfg.drop_path > 0,
             f"mean of the {cfg.average_top} best epochs if no worse": cfg.average_top > 0}
    return ", ".join(words + [word for word, on in flags.items() if on])
