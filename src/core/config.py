"""Job configs as dataclasses; the command-line flags are generated from their fields.

Every job has one dataclass (src.core.settings, src.core.submit_settings, src.core.kaggle_settings).
Each field has a default, a help text and, for a training run's settings, a role (src.core.roles); `parse_config(Cls, argv)` turns the
fields into flags (`image_size` becomes `--image-size H W`), reads an optional
`--config FILE` (JSON or YAML) and lets flags win over the file. An unknown flag, an unknown
key in the file or a value of the wrong type is an error, never ignored.
`save_config(cfg, folder)` writes the resolved config as config.json beside a run's outputs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from pathlib import Path

from src.core.errors import KitError
from src.core.files import write_text
from src.core.roles import ROLES


def opt(default, help: str, choices: tuple | None = None, positional: bool = False, short: str = "",
        check=None, const=None, role: str = ""):
    """Return a dataclass field with its default, help text and allowed values (for the CLI).

    positional=True makes it a required positional argument (`download COMPETITION`);
    short adds a one-letter alias (`-m` for `--message`); check(value) returns what was
    expected when a value is wrong (checked per item for tuples), else None; const makes the value
    optional on the command line (`--tta` means const, `--tta auto` means auto); role says what a
    training run's setting is (src.core.roles: task, model, recipe, place ...), which decides what a
    resume, a full-fit and the ledger do with it.
    """
    if role and role not in ROLES:
        raise ValueError(f"opt role {role!r}: expected one of {', '.join(ROLES)}")
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "check": check,
                                                         "positional": positional, "short": short, "const": const,
                                                         "role": role})


def positive(value):
    return None if value > 0 else "a number above 0"


def non_negative(value):
    return None if value >= 0 else "a number of 0 or more"


MAX_SIDE = 4096  # pixels: beyond it one image's activations outgrow an accelerator's memory (a T4 has 16 GB)


def image_side(value):
    return None if 0 < value <= MAX_SIDE else (f"a size from 1 to {MAX_SIDE} pixels a side (larger does not fit an "
                                               "accelerator's memory even one image at a time)")


def fraction(value):
    return None if 0 < value < 1 else "a number between 0 and 1"


def augment_policy(value):
    """Return what --augment expects unless value is a built-in policy or albumentations:FILE naming a file."""
    if value in ("none", "light", "strong"):
        return None
    if value.startswith("albumentations:"):
        return None if Path(value.split(":", 1)[1]).is_file() else \
            "albumentations:FILE naming an existing file (a Compose saved with A.save)"
    return "one of none, light, strong, or albumentations:FILE"


def file_name(value: str):
    """Return what --name expects unless value is a plain file name: a path could write outside --out."""
    unsafe = value in ("", ".") or "/" in value or "\\" in value or ".." in value
    return "a file name without path separators or '..'" if unsafe else None


@dataclasses.dataclass
class DataOptions:
    """Where the competition lives and how its training images are split."""

    data: str = opt("data/demo", "competition data folder", role="place")
    labels_csv: str = opt("", "CSV holding the training labels; empty: folders train/<class>/ or a guessed CSV",
                          role="source")
    id_column: str = opt("", "image id or path column of the labels CSV; empty: guessed", role="source")
    label_column: str = opt("", "label column(s) of the labels CSV, comma separated; empty: guessed", role="task")
    images_dir: str = opt("", "folder of the training images a CSV names; empty: guessed", role="source")
    test_dir: str = opt("", "folder of the test images; empty: guessed (test_upload, test, ...)", role="place")
    val_fraction: float = opt(0.2, "share of training images held out for validation", check=fraction, role="holdout")
    folds: int = opt(0, "K for a stratified K-fold split; 0: a single train/validation split",
                     check=lambda k: None if k == 0 or k >= 2 else "0 (one split) or 2 and more", role="holdout")
    fold: int = opt(-1, "the validation fold with --folds K; -1: src.train trains every fold in turn "
                        "(RUN/fold-<i>/), other jobs validate on fold 0",
                    check=lambda v: None if v >= -1 else "a fold number, or -1 for every fold", role="holdout")
    group_column: str = opt("", "CSV column whose equal values must stay on one side of the split", role="holdout")
    min_class_count: int = opt(0, "drop classes with fewer training images than this (reported)",
                               check=non_negative, role="task")
    seed: int = opt(42, "seed of the split and of shuffling", check=non_negative, role="recipe")
    strict_images: bool = opt(False, "a corrupt or missing training image is fatal instead of skipped", role="session")
    split_file: str = opt("", "split CSV to reuse or write; empty: runs/splits/<data>-<settings>.csv", role="place")
    new_label: str = opt("", "the answer for an identity never seen in training (new_whale, new_individual): an "
                             "identity task; empty: found in the sample submission's rows when it names one",
                         role="task")

    def check(self) -> None:
        """Raise naming the flags that do not fit together."""
        if self.folds > 1 and self.fold >= self.folds:
            raise KitError(f"--fold {self.fold}: expected 0 .. {self.folds - 1} with --folds {self.folds}")


@dataclasses.dataclass
class PipelineOptions:
    """How images are decoded, resized, cached, augmented and batched."""

    image_size: tuple[int, int] = opt((224, 224), "height and width fed to the network", check=image_side, role="model")
    resize: str = opt("stretch", "resize mode", ("stretch", "pad", "crop", "longest"), role="recipe")
    sharpen: float = opt(0.0, "unsharp-mask amount after resizing; 0: off", check=non_negative, role="recipe")
    cache: str = opt("memory", "keep decoded, resized images after epoch 1", ("memory", "disk", "none"), role="session")
    batch_size: int = opt(32, "images per batch", check=positive, role="recipe")
    augment: str = opt("light", "training augmentation: none, light, strong, or albumentations:FILE (a Compose "
                       "saved with albumentations' A.save, JSON or YAML)", check=augment_policy, role="recipe")
    flip: bool = opt(True, "horizontal flips in augmentation; --no-flip for digits, text, signs", role="recipe")
    augment_backend: str = opt("xla", "xla: XLA-compiled ops (TPU-safe, fastest measured); "
                               "native: tf.image's warp kernel", ("xla", "native"), role="recipe")
    mixup: float = opt(0.0, "MixUp Beta(alpha, alpha) on batches; 0: off", check=non_negative, role="recipe")
    cutmix: float = opt(0.0, "CutMix Beta(alpha, alpha) on batches; 0: off", check=non_negative, role="recipe")


def parse_config(cls, argv=None, description: str | None = None, prog: str | None = None):
    """Return an instance of dataclass `cls` from defaults < `--config FILE` < flags."""
    parser = build_parser(cls, description, prog)
    given = vars(parser.parse_args(argv))
    values = {}
    config_file = given.pop("config", None)
    if config_file:
        values.update(read_config_file(config_file, cls))
    values.update(given)
    return make_config(cls, values, source="flags")


def build_parser(cls, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """Return an ArgumentParser with one flag per field; absent flags stay absent (not defaulted)."""
    parser = argparse.ArgumentParser(prog=prog, description=description or cls.__doc__,
                                     argument_default=argparse.SUPPRESS, allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="JSON or YAML file of field values; flags win over it")
    hints = typing.get_type_hints(cls)
    hidden = getattr(cls, "CLI_HIDDEN", ())  # shared fields a job does not use (train has per-stage sizes)
    for field in dataclasses.fields(cls):
        if field.name not in hidden:
            add_flag(parser, field, hints[field.name])
    return parser


def add_flag(parser: argparse.ArgumentParser, field: dataclasses.Field, kind) -> None:
    """Add the flag for one field: tuples take several values, bools get --x/--no-x."""
    flag = "--" + field.name.replace("_", "-")
    help_text = f"{field.metadata.get('help', '')} (default: {field.default!r})"
    choices = field.metadata.get("choices")
    if field.metadata.get("positional"):
        many = typing.get_origin(kind) is tuple  # tuple[str, ...]: one or more values (IMAGE ...)
        parser.add_argument(field.name, type=typing.get_args(kind)[0] if many else kind, choices=choices,
                            nargs="+" if many else None, help=field.metadata.get("help", ""),
                            metavar=field.name.upper())
        return
    if field.metadata.get("short"):
        flag = (field.metadata["short"], flag)
    else:
        flag = (flag,)
    if kind is bool:
        parser.add_argument(*flag, dest=field.name, action=argparse.BooleanOptionalAction, help=help_text)
    elif typing.get_origin(kind) is tuple and typing.get_args(kind)[-1] is Ellipsis:
        # tuple[str, ...]: a repeatable flag (--run A --run B)
        parser.add_argument(*flag, dest=field.name, action="append", type=typing.get_args(kind)[0], help=help_text)
    elif typing.get_origin(kind) is tuple:
        item_types = typing.get_args(kind)
        parser.add_argument(*flag, dest=field.name, nargs=len(item_types), type=item_types[0],
                            metavar=tuple(f"V{i}" for i in range(len(item_types))), help=help_text)
    elif field.metadata.get("const") is not None:
        parser.add_argument(*flag, dest=field.name, type=kind, choices=choices, help=help_text, nargs="?",
                            const=field.metadata["const"])
    else:
        parser.add_argument(*flag, dest=field.name, type=kind, choices=choices, help=help_text)


def read_config_file(path: str, cls) -> dict:
    """Return the field values a JSON or YAML file sets; unknown keys are an error naming them."""
    file = Path(path)
    if not file.is_file():
        raise KitError(f"--config {path}: no such file")
    text = file.read_text()
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml  # only config files need it

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as err:  # both parsers' errors carry the line that broke
        raise KitError(f"--config {path}: cannot parse: {err}") from None
    if not isinstance(data, dict):
        raise KitError(f"--config {path}: expected a mapping of field names to values")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {key.replace("-", "_"): value for key, value in data.items()}
    hidden = set(getattr(cls, "CLI_HIDDEN", ()))
    unused = sorted(set(values) & hidden)
    if unused:
        raise KitError(f"--config {path}: {', '.join(unused)} is not a setting of this job "
                       f"({cls.__name__} uses per-stage values instead)")
    unknown = sorted(set(values) - names)
    if unknown:
        raise KitError(f"--config {path}: unknown field(s) {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(names))}")
    return make_config(cls, values, source=f"--config {path}", partial=True)


def make_config(cls, values: dict, source: str, partial: bool = False):
    """Check each value against its field's type and choices; return the config (or the dict)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {name: check_value(name, value, hints[name], fields[name], source)
               for name, value in values.items()}
    if partial:
        return checked
    cfg = cls(**checked)
    for field in dataclasses.fields(cfg):  # defaults too: a job may change a default's meaning
        check_value(field.name, getattr(cfg, field.name), hints[field.name], field, source)
    if hasattr(cfg, "check"):
        cfg.check()
    return cfg


def check_value(name: str, value, kind, field: dataclasses.Field, source: str):
    """Return `value` converted to the field's type, or raise naming the field and what was expected."""
    flag = f"--{name.replace('_', '-')}"
    where = flag if source == "flags" else f"{source}: {name} ({flag})"
    if typing.get_origin(kind) is tuple and typing.get_args(kind)[-1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise KitError(f"{where}: expected a list, got {value!r}")
        return tuple(check_value(name, v, typing.get_args(kind)[0], field, source) for v in value)
    if typing.get_origin(kind) is tuple:
        item_types = typing.get_args(kind)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            raise KitError(f"{where}: expected {len(item_types)} values, got {value!r}")
        return tuple(check_value(name, v, t, field, source) for v, t in zip(value, item_types))
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}.get(kind, True)
    if not ok:
        raise KitError(f"{where}: expected {kind.__name__}, got {value!r}")
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise KitError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    expected = field.metadata.get("check") and field.metadata["check"](value)
    if expected:
        raise KitError(f"{where}: expected {expected}, got {value!r}")
    if kind is float and not math.isfinite(value):  # inf passes "above 0"; nan fails every comparison above
        raise KitError(f"{where}: expected a finite number, got {value!r}")
    return float(value) if kind is float else value


def save_config(cfg, folder: str | Path) -> Path:
    """Write the resolved config as folder/config.json (atomically) and return its path.

    Fields the job hides from its flags (CLI_HIDDEN) are left out: a value no job used must
    not be read back as if it had been.
    """
    hidden = getattr(cfg, "CLI_HIDDEN", ())
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in hidden}
    return write_text(Path(folder) / "config.json", json.dumps(values, indent=2, sort_keys=True) + "\n")
