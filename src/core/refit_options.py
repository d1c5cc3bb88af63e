"""The value checks of --full-fit, --soft-labels / --soft-weight and --pseudo-soft (TrainConfig.check calls them).

What can be said from the flags alone is said here, when the config is made; what needs the
reference run's files (src.runs.reference) or the table of training images (src.data.soft_labels)
is checked when training starts, still before any folder is written.
"""
from __future__ import annotations

from pathlib import Path

from src.core.errors import KitError

SOFT_WEIGHT = 0.3  # --soft-weight's default (src.core.settings): another value means nothing without --soft-labels


def check_refit_files(cfg) -> None:
    """Raise naming --soft-labels when its file is missing: called when training starts, not when a saved config
    is read back (a trained run stays usable after the file moves)."""
    if cfg.soft_labels and not Path(cfg.soft_labels).is_file():
        raise KitError(f"--soft-labels {cfg.soft_labels}: no such file; expected a K-fold run's oof_predictions.csv "
                       "(python -m src.train --folds K writes it)")


def check_refit_options(cfg) -> None:
    """Raise naming the flag when --full-fit, --soft-labels or --pseudo-soft cannot work with the other flags."""
    if cfg.soft_weight != SOFT_WEIGHT and not cfg.soft_labels:
        raise KitError(f"--soft-weight {cfg.soft_weight:g}: the share of --soft-labels' probabilities in each target; "
                       "pass --soft-labels OOF.csv too (without it every target is the one-hot label)")
    if cfg.pseudo_soft and not cfg.pseudo_labels:
        raise KitError("--pseudo-soft: keeps --pseudo-labels' probabilities as targets; pass --pseudo-labels FILE too")
    if cfg.full_fit and cfg.folds > 1 and cfg.fold == -1:
        raise KitError(f"--full-fit {cfg.full_fit}: trains one model on every training image, so --folds "
                       f"{cfg.folds} (every fold in turn) has no meaning: leave --folds out (the reference run's "
                       "settings are taken)")
    if cfg.full_fit and cfg.average_top:
        raise KitError(f"--full-fit {cfg.full_fit}: --average-top {cfg.average_top} ranks epochs by their holdout "
                       "score and a full-fit holds nothing out: leave --average-top out")
    if cfg.full_fit and cfg.out and Path(cfg.out).resolve() == Path(cfg.full_fit).resolve():
        raise KitError(f"--full-fit {cfg.full_fit}: --out is the reference run itself; choose another --out "
                       f"(empty: {cfg.full_fit.rstrip('/')}-fullfit)")
    multi_task = len([c for c in cfg.targets.split(",") if c.strip()]) > 1
    if multi_task and (cfg.soft_labels or cfg.pseudo_soft):
        flag = "--soft-labels" if cfg.soft_labels else "--pseudo-soft"
        raise KitError(f"{flag}: soft targets are for the one submission column; --targets {cfg.targets} trains a "
                       "head per column: leave one of them out")
