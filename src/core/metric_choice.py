"""The competition's metric: its name in the kit, its direction, its log column, and which source chose it.

    choice = resolve_metric(cfg.metric, cfg.data, fallback="auc", fallback_why="the probability format's")
    print(choice.line)     # metric: auc (Kaggle's evaluation metric 'Area Under ...' in data/x/kaggle_metric.json)
    cfg, choice = settle_metric(cfg, default_metric(schema, class_map))   # the same, said, and cfg.metric set
    monitor("map@5")       # val_map_at_5: the per-epoch column that checkpoints and reports read

Every job (train, K-fold, screen_backbones, tune, prune, submit, predict) asks this one module, in
one order: the --metric flag > the run's config.json (submit, predict) > kaggle_metric.json (which
`python -m src.kaggle_api download` writes from the competition's record) > the default of the
submission format. The line says which source decided; a Kaggle name the kit does not know is
said and never guessed. Here too: the names, each one's direction, its log column (monitor) and the
tie-breaking rank every choice of an epoch, stage, backbone or trial uses. The scores themselves live
in src.inference.metrics (NumPy, a holdout) and src.models.epoch_metrics (Keras, per epoch).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

from src.core.errors import KitError
from src.core.files import write_json
from src.core.task_kind import PAUC_PATTERN, TaskKind, kind_named, kind_scoring

KAGGLE_FILE = "kaggle_metric.json"
# The kit's metrics, the one list (each task kind, src.kinds, names those that score it): map@K stands for map@1,
# map@5 ...; pauc@R for pauc@0.8 ...; f2_samples scores tags (multi-label); rmse, mae and r2 a number; dice masks
# (segmentation: the mean Dice of (image, class) pairs, src.kinds.segmentation.metrics).
NAMES = ("accuracy", "f1_macro", "log_loss", "auc", "qwk", "map@K", "pauc@R", "f2_samples", "rmse", "mae", "r2",
         "dice")
LOWER_IS_BETTER = ("log_loss", "rmse", "mae")
# Kaggle's names (lower case) -> the kit's; small on purpose: only names whose meaning is unambiguous.
KAGGLE_NAMES = {
    "area under receiver operating characteristic curve": "auc", "auc": "auc", "roc auc": "auc",
    "log loss": "log_loss", "logloss": "log_loss", "multiclass loss": "log_loss",
    "categorization accuracy": "accuracy", "accuracy": "accuracy",
    "quadratic weighted kappa": "qwk",
    "mean f2": "f2_samples", "f-beta": "f2_samples", "mean fscore beta": "f2_samples",
    "macro f1": "f1_macro", "macro f1 score": "f1_macro", "f1 macro": "f1_macro",
    # ISIC 2024's metric, partial AUC above 80% true-positive rate; other rates are read from the name below
    "pauc above tpr": "pauc@0.8", "isic pauc above tpr": "pauc@0.8", "pauc": "pauc@0.8", "partial auc": "pauc@0.8",
    # numbers (regression): PetFinder Pawpularity's RMSE, bone age's MAE
    "root mean squared error": "rmse", "root mean square error": "rmse", "rmse": "rmse",
    "mean absolute error": "mae", "mae": "mae", "r2": "r2", "r2 score": "r2", "r squared": "r2",
    "coefficient of determination": "r2",
    # masks (segmentation): HuBMAP's and Severstal's mean Dice coefficient
    "dice": "dice", "dice coefficient": "dice", "mean dice": "dice", "mean dice coefficient": "dice",
    "dice score": "dice", "sorensen dice": "dice", "sørensen–dice": "dice",
}
RANKING = ("auc",)  # metrics of one class's probability order alone; pauc@R too (is_ranking)


def known_metrics() -> str:
    """Return the metrics as an error lists them: each with the kind it scores when that is not one label."""
    label = kind_named("label")
    return ", ".join(n.replace("map@K", "map@K (map@5 ...)").replace("pauc@R", "pauc@R (pauc@0.8 ...)")
                     + ("" if label.scores_with(n) else f" ({kind_scoring(n).name})") for n in NAMES)


def check_metric(name: str) -> str:
    """Return the metric's canonical name; an unknown one is an error listing the known ones."""
    if name == "logloss":
        return "log_loss"
    if (name in NAMES and name not in ("map@K", "pauc@R")) or re.fullmatch(r"map@[1-9]\d*", name):
        return name
    if re.fullmatch(PAUC_PATTERN, name):
        return f"pauc@{float(name.split('@')[1]):g}"  # one spelling: pauc@.80 is pauc@0.8
    raise KitError(f"--metric {name}: expected one of {known_metrics()}")


def metric_flag(value: str):
    """Return what --metric expects when value is not empty and not a metric, else None (a field check)."""
    try:
        if value:
            check_metric(value)
        return None
    except KitError:
        return f"one of {known_metrics()}, or empty (the run's, Kaggle's or the submission format's)"


def check_metric_for(name: str, kind: TaskKind | None = None) -> str:
    """Return the metric's canonical name when it can score the task's kind of answer (tags: f2_samples ...)."""
    name, kind = check_metric(name), kind or kind_named("label")
    if not kind.scores_with(name):
        other = kind_scoring(name)
        hint = f"; {name} scores {other.answer}: {other.misfit_hint}" if other.misfit_hint else ""
        raise KitError(f"--metric {name}: the target is {kind.answer}: expected {', '.join(kind.metrics)}{hint}")
    return name


def is_ranking(name: str) -> bool:
    """Return True when the metric scores only the order of one class's probabilities (auc, pauc@R).

    Such metrics want the positive class's probability in the submission and allow rank blends.
    """
    name = check_metric(name)
    return name in RANKING or name.startswith("pauc@")


def pauc_rate(name: str) -> float:
    """Return R of pauc@R: the true-positive rate above which the partial AUC is taken."""
    return float(check_metric(name).split("@")[1])


def higher_is_better(name: str) -> bool:
    return check_metric(name) not in LOWER_IS_BETTER


def log_name(name: str) -> str:
    """Return the metric's name in Keras logs and history.csv (map@5 -> map_at_5: '@' and '.' are not safe keys)."""
    return check_metric(name).replace("@", "_at_").replace(".", "_")  # pauc@0.8 -> pauc_at_0_8


def monitor(name: str) -> str:
    """Return the metric's per-epoch holdout column in Keras logs and history.csv: val_auc, val_map_at_5 ...

    The one spelling every checkpoint, early stop, ranking and report uses.
    """
    return "val_" + log_name(name)


def rank_key(value, loss, name: str) -> tuple:
    """Return a sort key, lowest best: the metric in its direction, ties to the lower val_loss, NaN last.

    Exists so every choice of a best epoch, stage, backbone or trial breaks ties the same way, never
    simply by order (Keras's EarlyStopping keeps the first of equal values). Values are compared at
    float32's precision, the precision Keras computes and logs them in: an epoch's score read back from
    a CSV on --resume and an equal one logged live are then equal, whatever digits the text kept.
    """
    def finite(v):
        return v is not None and not math.isnan(float(v))

    def single(v):
        return float(np.float32(v))

    sign = -1.0 if higher_is_better(name) else 1.0
    return (0 if finite(value) else 1, sign * single(value) if finite(value) else 0.0,
            single(loss) if finite(loss) else math.inf)


def is_better(value, loss, best_value, best_loss, name: str) -> bool:
    """Return True when (value, loss) beats (best_value, best_loss) by rank_key; anything beats no best (None)."""
    if best_value is None and best_loss is None:
        return True
    return rank_key(value, loss, name) < rank_key(best_value, best_loss, name)


# ---------------------------------------------------------------- Kaggle's name


def write_kaggle_metric(folder, competition: str, evaluation_metric: str) -> Path:
    """Write folder/kaggle_metric.json: the competition and its evaluation metric as Kaggle names it."""
    path = Path(folder) / KAGGLE_FILE
    write_json(path, {"competition": competition, "evaluation_metric": evaluation_metric})
    return path


def read_kaggle_metric(folder) -> str:
    """Return Kaggle's name of the metric from folder/kaggle_metric.json, or '' when there is none."""
    path = Path(folder) / KAGGLE_FILE
    if not path.is_file():
        return ""
    try:
        return str(json.loads(path.read_text()).get("evaluation_metric") or "").strip()
    except (ValueError, AttributeError):
        raise KitError(f"{path}: not the JSON object python -m src.kaggle_api download writes") from None


def kit_name(kaggle_name: str, fallback: str = "") -> str:
    """Return the kit's metric for Kaggle's name, or '' when the name is not in the table.

    MAP@{K} leaves K to the sample submission: the format's map@k when that is the fallback.
    """
    key = " ".join(kaggle_name.lower().replace("_", " ").split())
    if key in KAGGLE_NAMES:
        return KAGGLE_NAMES[key]
    found = re.fullmatch(r"map\s*@\s*(\d+|\{k\})", key)
    if found and found.group(1).isdigit() and int(found.group(1)) > 0:
        return f"map@{int(found.group(1))}"
    if found and fallback.startswith("map@"):
        return fallback
    rate = re.fullmatch(r"(?:isic )?(?:pauc|partial auc)\s*(?:above|over)?\s*(\d{1,2})\s*%?\s*tpr", key)
    if rate and 0 < int(rate.group(1)) < 100:
        return f"pauc@{int(rate.group(1)) / 100:g}"
    return ""


# ---------------------------------------------------------------- resolution


@dataclasses.dataclass(frozen=True)
class MetricChoice:
    """The metric a job uses, the source that decided it (flag, run, kaggle, format) and the line saying so."""

    name: str
    source: str
    line: str


def resolve_metric(flag: str, data_dir, fallback: str, fallback_why: str, kind: TaskKind | None = None,
                   run_metric: str = "", run_where: str = "") -> MetricChoice:
    """Return the metric by the kit's order: flag > the run's config > kaggle_metric.json > fallback.

    fallback is the submission format's default and fallback_why says whose (e.g. "the label format's").
    A flag that does not fit the target is an error; a run's or Kaggle's that does not fit is said and passed.
    """
    kind = kind or kind_named("label")
    if flag:
        name = check_metric_for(flag, kind)
        differs = f"; the run(s) trained for {run_metric} ({run_where}): their epochs and stages were chosen by " \
                  f"{run_metric}" if run_metric and run_metric != name else ""
        return MetricChoice(name, "flag", f"metric: {name} (--metric){differs}")
    if run_metric:
        return MetricChoice(check_metric_for(run_metric, kind), "run",
                            f"metric: {run_metric} (from the run's config, {run_where})")
    path = Path(data_dir) / KAGGLE_FILE
    kaggle = read_kaggle_metric(data_dir)
    fallback = check_metric_for(fallback, kind)
    if kaggle:
        name = kit_name(kaggle, fallback)
        if name and kind.scores_with(name):
            return MetricChoice(name, "kaggle", f"metric: {name} (Kaggle's evaluation metric {kaggle!r} in {path})")
        why = (f"which maps to {name}, a metric for {kind_scoring(name).answer}, not this target") if name else \
            "which the kit does not know"
        return MetricChoice(fallback, "format", f"metric: {fallback} ({fallback_why} default): Kaggle's evaluation "
                                                f"metric {kaggle!r} in {path} is one {why}; --metric sets it")
    return MetricChoice(fallback, "format", f"metric: {fallback} ({fallback_why} default; --metric sets it)")


def settle_metric(cfg, fallback: tuple, kind: TaskKind | None = None, run_metric: str = "", run_where: str = "",
                  note: str = "", data_dir=None, classes: int = 0):
    """Return (cfg with its metric resolved, the MetricChoice) after printing the choice's line (and note).

    The step every job takes once: fallback is (the submission format's metric, whose default it is),
    from src.inference.formats.default_metric; data_dir (where kaggle_metric.json may sit) defaults to cfg.data.
    The returned config names the metric itself, never "", so config.json records what decided the run.
    """
    data_dir = cfg.data if data_dir is None else data_dir
    choice = resolve_metric(cfg.metric, data_dir, *fallback, kind, run_metric, run_where)
    if choice.name.startswith("pauc@") and classes > 2:  # one class against the rest would be an arbitrary class
        raise KitError(f"metric {choice.name} ({choice.line.removeprefix('metric: ')}): a partial AUC scores one "
                       f"class against the rest (ISIC 2024: malignant or not), and the target has {classes} classes; "
                       "use --metric auc (the mean of each class's one-vs-rest AUC), or a two-class target")
    print(choice.line + note, flush=True)
    if how_scored(choice.name, classes):
        print(how_scored(choice.name, classes), flush=True)
    return dataclasses.replace(cfg, metric=choice.name), choice


def how_scored(name: str, classes: int) -> str:
    """Return the line saying how a metric reads several classes when that is a choice ('' otherwise).

    Why: auc is one class against the rest on two classes; on more it is the macro mean of each class's
    one-vs-rest AUC (Plant Pathology's), which chooses the epochs and stage: said once, not left to guess.
    """
    if name == "auc" and classes > 2:
        return (f"auc on {classes} classes: the mean of each class's one-vs-rest AUC (macro, as Plant Pathology "
                "scores), every epoch and on the holdout")
    return ""
