"""Two-stage progressive-resolution fine-tuning: `python -m src.train`.

    python -m src.train --data data/cars --backbone efficientnet_b0 --out runs/effb0
    python -m src.train --data data/demo --backbone small_resnet --weights none \
        --stage1-size 32 32 --stage2-size 48 48 --stage1-lr 3e-3 --stage2-lr 1e-3 --out runs/demo

The reference recipe: an optional warm-up (head only, backbone frozen); stage 1 with every
layer trainable (BatchNorm kept frozen for pretrained weights, as the Keras fine-tuning guide
advises) at a moderate size, ExponentialDecay and EarlyStopping on val_accuracy restoring
the best weights; stage 2 rebuilt at a higher size from stage 1's best weights with a much
lower rate. Writes config.json, class_map.json, split.csv, <stage>.weights.h5, history.csv,
curves.png and holdout_predictions.csv into the run folder. `--resume` continues a run that
was cut off, from its last finished epoch (and starts one when there is none, so a rerun of
a notebook or of `make demo` is safe); an out-of-memory error halves the batch size and
retries the stage, down to --min-batch-size.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

from src.config import DataOptions, PipelineOptions, opt, parse_config
from src.errors import KitError, run_cli


@dataclasses.dataclass
class TrainConfig(DataOptions, PipelineOptions):
    """Fine-tune one backbone in two stages at increasing resolution."""

    CLI_HIDDEN = ("image_size",)  # each stage has its own size

    backbone: str = opt("efficientnet_b0", "backbone name (python -m src.backbones lists them)")
    weights: str = opt("imagenet", "imagenet (noisy-student for *_ns), none, or a weights file/folder")
    out: str = opt("", "run folder; empty: runs/<backbone>")
    stages: int = opt(2, "1: stop after stage 1; 2: both stages")
    warmup_epochs: int = opt(0, "epochs of head-only training (backbone frozen) before stage 1")
    warmup_lr: float = opt(1e-3, "learning rate of the warm-up")
    stage1_size: tuple[int, int] = opt((220, 305), "stage 1 image height and width")
    stage1_epochs: int = opt(30, "most epochs of stage 1 (early stopping usually ends it sooner)")
    stage1_lr: float = opt(1e-3, "stage 1 initial learning rate (ExponentialDecay)")
    stage1_patience: int = opt(4, "stage 1 early-stopping patience, in epochs without a better val_accuracy")
    stage2_size: tuple[int, int] = opt((440, 610), "stage 2 image height and width")
    stage2_epochs: int = opt(10, "most epochs of stage 2")
    stage2_lr: float = opt(1e-6, "stage 2 initial learning rate (ExponentialDecay)")
    stage2_patience: int = opt(5, "stage 2 early-stopping patience")
    decay_steps: int = opt(1000, "ExponentialDecay decay_steps")
    decay_rate: float = opt(0.9, "ExponentialDecay decay_rate")
    optimizer: str = opt("adam", "optimizer", ("adam", "sgd", "adamw"))
    loss: str = opt("cce", "cce: categorical cross-entropy; focal: focal loss", ("cce", "focal"))
    label_smoothing: float = opt(0.0, "label smoothing of either loss")
    focal_gamma: float = opt(2.0, "focal loss focusing exponent; 0 with --focal-alpha 1 is the cross-entropy")
    focal_alpha: float = opt(1.0, "focal loss weight alpha (the paper's 0.25); 1: no weighting")
    class_weights: bool = opt(False, "weight classes by inverse training frequency")
    train_batchnorm: bool = opt(False, "train BatchNorm layers too (always so with --weights none)")
    dropout: float = opt(0.2, "dropout before the head (and after each hidden head layer)")
    head_layers: int = opt(0, "hidden Dense layers in the head (python -m src.tune searches this)")
    head_units: int = opt(256, "width of each hidden head layer")
    head_l2: float = opt(0.0, "L2 weight penalty of the head's Dense layers")
    min_batch_size: int = opt(4, "out of memory: halve the batch down to this, then give up")
    resume: bool = opt(False, "continue the run in --out from its last finished epoch")
    extra_data: str = opt("", "a second labelled folder (class folders or labels CSV) added to training only")
    targets: str = opt("", "label columns, one softmax head each (make_id,model_id); must include the "
                           "submission's column; empty: that column alone")
    loss_weights: str = opt("", "one loss weight per --targets column (0.3,1); empty: 1 each")
    head_scheme: str = opt("parallel", "parallel: heads side by side; chained: each head also sees the "
                                       "earlier heads' outputs (list coarse columns first)", ("parallel", "chained"))


@dataclasses.dataclass(frozen=True)
class Stage:
    """One fit: its name, size, epochs, learning rate, patience and whether the backbone trains."""

    name: str
    size: tuple
    epochs: int
    lr: float
    patience: int
    train_backbone: bool


def plan_stages(cfg: TrainConfig) -> list:
    """Return the stages to run: warm-up (if asked), stage 1, and stage 2 unless --stages 1."""
    if cfg.stages not in (1, 2):
        raise KitError(f"--stages {cfg.stages}: expected 1 or 2")
    stages = []
    if cfg.warmup_epochs > 0:
        stages.append(Stage("warmup", tuple(cfg.stage1_size), cfg.warmup_epochs, cfg.warmup_lr,
                            cfg.warmup_epochs, False))
    stages.append(Stage("stage1", tuple(cfg.stage1_size), cfg.stage1_epochs, cfg.stage1_lr,
                        cfg.stage1_patience, True))
    if cfg.stages == 2:
        stages.append(Stage("stage2", tuple(cfg.stage2_size), cfg.stage2_epochs, cfg.stage2_lr,
                            cfg.stage2_patience, True))
    return stages


def train(cfg: TrainConfig, callbacks=()) -> dict:
    """Run every stage into the run folder; return the summary (best val_accuracy per stage, weights)."""
    from src.accelerator import pick_strategy
    from src.backbones import get_spec
    from src.training import prepare_run, run_stage, write_reports

    spec = get_spec(cfg.backbone)
    out = Path(cfg.out or f"runs/{cfg.backbone}")
    data = prepare_run(cfg, out)
    strategy = pick_strategy()
    state = read_state(out)
    previous = None
    for stage in plan_stages(cfg):
        if stage.name in state["finished"]:
            print(f"{stage.name}: finished earlier, weights in {out / (stage.name + '.weights.h5')}")
        else:
            state["best"][stage.name] = run_stage(stage, cfg, spec, data, out, previous, strategy, callbacks)
            state["finished"].append(stage.name)
            write_state(out, state)
        previous = out / f"{stage.name}.weights.h5"
    summary = write_reports(cfg, spec, data, out, plan_stages(cfg), strategy)
    for name, value in state["best"].items():
        print(f"{name}: best val_accuracy {value:.4f}, weights {out / (name + '.weights.h5')}")
    print(f"holdout accuracy with the final weights: {summary['holdout_accuracy']:.4f} "
          f"({out / 'holdout_predictions.csv'})")
    return {**summary, "best": dict(state["best"]), "out": str(out)}


def read_state(out: Path) -> dict:
    """Return which stages finished and their best val_accuracy (state.json in the run folder)."""
    path = out / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"finished": [], "best": {}}


def write_state(out: Path, state: dict) -> None:
    (out / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def check_run_folder(cfg: TrainConfig, out: Path) -> None:
    """Refuse to write over an earlier run unless --resume says to continue it."""
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise KitError(f"{out} already holds a run: pass --resume to continue it, or another --out; "
                       "nothing was changed")
    if cfg.resume and out.exists() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise KitError(f"--resume: {out} holds files but no run (no config.json); nothing was changed")


def clear_stage(out: Path, name: str) -> None:
    """Remove one stage's backup, history and checkpoint, so it starts again from its beginning."""
    shutil.rmtree(out / "backup" / name, ignore_errors=True)
    for path in (out / f"history-{name}.csv", out / f"{name}.weights.h5"):
        path.unlink(missing_ok=True)


def main(argv=None) -> dict:
    """Run the job from command-line flags; return its result (notebooks show it)."""
    return train(parse_config(TrainConfig, argv))


if __name__ == "__main__":
    sys.exit(run_cli(main))

