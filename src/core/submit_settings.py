"""The settings of the jobs that predict and report: `python -m src.submit`, `src.predict`, `src.ledger`.

    cfg = parse_config(SubmitConfig, ["--run", "runs/a", "--tta", "auto"])

As src.core.settings is for the training jobs (its TrainConfig, ScreenConfig ...); one dataclass per
command, its fields the command's flags; nothing heavy is imported (`--help` loads no TensorFlow).
"""
from __future__ import annotations

import dataclasses

from src.core.config import DataOptions, file_name, non_negative, opt, positive
from src.core.metric_choice import NAMES as METRIC_NAMES, metric_flag

# TTA views with a percentage: center_crop_P keeps P% of each side, scale_P zooms to P% (src.inference.prediction).
VIEW_PERCENTS = {"center_crop": (20, 100), "scale": (50, 200)}
# The eight symmetries of a square (src.inference.views): flips, quarter turns, the two diagonal transposes.
DIHEDRAL_VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "transpose_rot90")
TTA_SCALES = (0.5, 2.0)  # --tta-scales: the least and most a view's size may be multiplied by


def view_problem(name: str):
    """Return what a TTA view name should be, or None when it is a view the kit makes.

    A view may end in @S: the view of the image resized to S times the run's size (hflip@1.15).
    """
    name, _, scale = name.partition("@")
    if scale and scale_problem(scale):
        return f"a view's @S suffix as {scale_problem(scale)}, not {name + '@' + scale!r}"
    if name in DIHEDRAL_VIEWS:
        return None
    kind, _, percent = name.rpartition("_")
    if kind not in VIEW_PERCENTS or not percent.isdigit():
        return (f"views {', '.join(DIHEDRAL_VIEWS)}, center_crop_P (P 20-100) or scale_P (P 50-200), each "
                f"optionally @S (S times the run's size), not {name!r}")
    low, high = VIEW_PERCENTS[kind]
    return None if low <= int(percent) <= high else f"{kind}_P with P from {low} to {high}, not {name!r}"


def scale_problem(text: str):
    """Return what a --tta-scales item should be, or None when it is a number within TTA_SCALES."""
    low, high = TTA_SCALES
    try:
        ok = low <= float(text) <= high
    except ValueError:
        ok = False
    return None if ok else f"a number from {low:g} to {high:g} (1.15: 15% larger than the run's size)"


def tta_view_list(value: str):
    """Return what the first wrong view of a comma-separated --tta-views value should be, or None."""
    return next(filter(None, (view_problem(v.strip()) for v in value.split(",") if v.strip())), None)


def tta_scale_list(value: str):
    """Return what the first wrong item of a comma-separated --tta-scales value should be, or None."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        return "at least one scale (1.0: the run's own size)"
    return next(filter(None, map(scale_problem, items)), None)


# Test-time augmentation views (src.inference.prediction makes them).
DEFAULT_VIEWS = ("identity", "hflip", "center_crop_90")
AUTO_VIEWS = ("identity", "hflip", "vflip", "center_crop_95", "center_crop_90", "center_crop_80", "scale_105",
              "scale_110", "scale_120")  # what --tta auto chooses from


@dataclasses.dataclass
class SubmitConfig(DataOptions):
    """Predict the test set with one or more runs and write a checked submission."""

    run: tuple[str, ...] = opt((), "training run folder; repeat for an ensemble")
    name: str = opt("submission", "file name (without .csv) in --out", check=file_name)
    out: str = opt("submissions", "folder for the submission and its report")
    tta: str = opt("", f"test-time augmentation: --tta alone means the default views ({', '.join(DEFAULT_VIEWS)}); "
                       "--tta auto picks views (and --tta-random passes) greedily on each run's holdout with "
                       "the metric, keeping only views that help; empty: none", ("", "default", "auto"),
                   const="default")
    tta_views: str = opt("", "comma-separated views (identity, hflip, vflip, rot90, rot180, rot270, transpose, "
                             "transpose_rot90, center_crop_P with P 20-100, scale_P with P 50-200, any of them @S: at "
                             "S times the run's size); with --tta auto: the candidates (empty: every view of "
                             f"{', '.join(AUTO_VIEWS)})", check=tta_view_list)
    tta_scales: str = opt("1.0", "comma-separated sizes, as multiples of the run's size, each view is also predicted "
                                 "at (1.0,1.15: FixRes, a little larger than training); with --tta auto: candidates",
                          check=tta_scale_list)
    tta_random: int = opt(0, "extra passes of each run's training augmentation", check=non_negative)
    tta_mean: str = opt("arithmetic", "how views are combined", ("arithmetic", "geometric"))
    ensemble_weights: str = opt("equal", "equal, or fit for the metric on the runs' shared holdout predictions "
                                         "(log loss: minimised; other metrics: hill climbing from the best single run "
                                         "or equal weights, whichever scores better)", ("equal", "fit"))
    blend: str = opt("mean", "how runs are combined: mean of probabilities, or rank: the mean of each run's ranks "
                             "of the positive class (auc only: it scores the order alone)", ("mean", "rank"))
    select_runs: bool = opt(False, "greedy forward selection of runs on their shared holdout (out of fold for "
                                   "K-fold runs): from the best single run, a run is added only if the metric improves")
    calibrate: str = opt("auto", "auto: with log_loss, a temperature fitted on the holdout (out of fold for K-fold "
                                 "runs) is applied to the test probabilities, the report showing the metric before "
                                 "and after; none: probabilities as predicted", ("auto", "none"))
    identity_blend: float = opt(0.0, "identity runs: weight W of the margin head's cosine to each identity's "
                                     "centre beside its nearest neighbours' best cosine, (1-W)*neighbours + W*head, "
                                     "the new answer's threshold chosen on the holdout after; 0: nearest neighbours "
                                     "alone", check=lambda v: None if 0 <= v <= 1 else "a weight from 0 to 1")
    metric: str = opt("", f"holdout metric: {', '.join(METRIC_NAMES)}; empty: the "
                          "runs' (their config.json), else Kaggle's (kaggle_metric.json), else the format's (label: "
                          "accuracy, probability: auc, class-probabilities: log_loss, top-k: map@k, multi-label: "
                          "f2_samples with a threshold per tag fitted on the holdout)", check=metric_flag)
    submission_format: str = opt("", "what the target column(s) hold; empty: read from the sample submission",
                                 ("", "label", "probability", "class-probabilities", "top-k", "multi-label"))
    overwrite: bool = opt(False, "replace an existing submission of the same name")
    solution: str = opt("", "CSV of true test labels to score against (the demo's solution.csv)")
    upload: bool = opt(False, "submit the written file to Kaggle (python -m src.kaggle_api submit)")
    competition: str = opt("", "competition slug for --upload")
    message: str = opt("", "submission message for --upload: the description is '[NAME] MESSAGE' (the ledger finds "
                           "the upload's scores by NAME)")
    wait: bool = opt(False, "with --upload: wait for the public score")
    accelerator: str = opt("auto", "tpu / gpu: an error when there is none; cpu; auto: the best found",
                           ("auto", "tpu", "gpu", "cpu"))


@dataclasses.dataclass
class LedgerConfig:
    """Every run and submission in one table, with Kaggle's public and private scores when known."""

    runs: tuple[str, ...] = opt(("runs",), "a run folder, or a folder searched for runs (K-fold runs, a kernel's "
                                           "output); repeatable")
    submissions: str = opt("submissions", "folder of src.submit's NAME.csv and NAME.json, and kaggle_scores.csv")
    competition: str = opt("", "competition slug: fetch Kaggle's scores of the submissions first (needs credentials)")
    out: str = opt("", "folder for runs.csv (the table) and cv_vs_lb.png; empty: the first --runs folder (the "
                       "folder holding it when that is a run), beside the runs it lists")


@dataclasses.dataclass
class PredictConfig:
    """Print the most probable classes of each image for a trained run."""

    images: tuple[str, ...] = opt((), "image files", positional=True)
    run: str = opt("", "training run folder (python -m src.train)")
    tta: bool = opt(False, f"average the default views ({', '.join(DEFAULT_VIEWS)})")
    tta_views: str = opt("", "comma-separated views instead of the defaults", check=tta_view_list)
    tta_scales: str = opt("1.0", "comma-separated sizes, as multiples of the run's size, each view is also "
                                 "predicted at", check=tta_scale_list)
    top: int = opt(5, "classes printed per image", check=positive)
    batch_size: int = opt(32, "images per batch", check=positive)
