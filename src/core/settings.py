"""Every job's settings in one place: one dataclass per command, its fields the command's flags.

Each field's default is the kit's recipe and its help says why; `src.core.config` turns the
fields into flags, reads `--config FILE` and checks every value's type. `check()` methods
check what a type cannot say (a positive batch size, a fold within the folds) when the config
is made, before any folder is written. The notebooks in kernels/ take their defaults from
here too (tests/test_notebooks.py fails when a notebook's parameter drifts from its field).

The Kaggle API's commands (download, submit, upload-src, upload-weights, push, status, output) have
theirs in src.core.kaggle_settings. This module imports nothing heavy: `python -m src.train --help` must not load TensorFlow.
"""
from __future__ import annotations

import dataclasses

from src.core.config import DataOptions, PipelineOptions, fraction, image_side, non_negative, opt, positive
from src.core.errors import KitError
from src.core.metric_choice import NAMES as METRIC_NAMES, metric_flag
from src.core.refit_options import SOFT_WEIGHT, check_refit_options
from src.core.task_kind import task_flag

def below_one(value):
    return None if 0 <= value < 1 else "a number from 0 up to (not including) 1"



METRIC_HELP = (f"the competition's metric: {', '.join(METRIC_NAMES)}; it picks the "
               "best epoch, checkpoint and early stop (ties to the lower val_loss); empty: Kaggle's from "
               "kaggle_metric.json (python -m src.kaggle_api download), else the submission format's")


# ---------------------------------------------------------------- training
@dataclasses.dataclass
class TrainConfig(DataOptions, PipelineOptions):
    """Fine-tune one backbone in two stages at increasing resolution."""

    CLI_HIDDEN = ("image_size",)  # each stage has its own size

    backbone: str = opt("efficientnet_b0", "backbone name or NAME:TAG (python -m src.backbones lists them), or "
                                           "hub:<keras-hub preset> (a preset name, kaggle:// handle or folder)",
                        role="model")
    weights: str = opt("imagenet", "imagenet (the backbone's weight tag: noisy-student for efficientnet_b0_ns), "
                                   "none, or a weights file/folder", role="model")
    out: str = opt("", "run folder; empty: runs/<backbone>", role="place")
    stages: int = opt(2, "1: stop after stage 1; 2: both stages", check=lambda v: None if v in (1, 2) else "1 or 2",
                      role="model")
    warmup_epochs: int = opt(0, "epochs of head-only training (backbone frozen) before stage 1", check=non_negative,
                             role="model")
    warmup_lr: float = opt(1e-3, "learning rate of the warm-up", check=positive, role="recipe")
    stage1_size: tuple[int, int] = opt((220, 305), "stage 1 image height and width", check=image_side, role="model")
    stage1_epochs: int = opt(30, "most epochs of stage 1 (early stopping usually ends it sooner)", check=positive,
                             role="length")
    stage1_lr: float = opt(0.0, "stage 1 initial learning rate (where --schedule starts; cosine: after the warm-up); "
                                "0: the recipe's for the weights, 1e-3 for pretrained and for random (--weights none)",
                           check=non_negative, role="recipe")
    stage1_patience: int = opt(4, "stage 1 early-stopping patience, in epochs without a better --metric", check=positive,
                               role="holdout")
    stage2_size: tuple[int, int] = opt((440, 610), "stage 2 image height and width", check=image_side, role="model")
    stage2_epochs: int = opt(10, "most epochs of stage 2", check=positive, role="length")
    stage2_lr: float = opt(0.0, "stage 2 initial learning rate (where --schedule starts); 0: the recipe's for the "
                                "weights, 1e-6 for pretrained (fine-tuning), 3e-4 for random (still learning)",
                           check=non_negative, role="recipe")
    stage2_patience: int = opt(5, "stage 2 early-stopping patience", check=positive, role="holdout")
    decay_steps: int = opt(1000, "ExponentialDecay decay_steps (--schedule exponential)", check=positive, role="recipe")
    decay_rate: float = opt(0.9, "ExponentialDecay decay_rate (--schedule exponential)", check=positive, role="recipe")
    schedule: str = opt("exponential", "learning rate per stage: exponential (ExponentialDecay, --decay-steps, "
                                       "--decay-rate); cosine: cosine decay to 0 over the stage's planned epochs",
                        ("exponential", "cosine"), role="recipe")
    lr_warmup_epochs: float = opt(0.0, "with --schedule cosine: epochs of linear rate warm-up from 0 at the start of "
                                       "stages 1 and 2 (--warmup-epochs trains the head alone before them)",
                                  check=non_negative, role="recipe")
    accumulate: int = opt(1, "batches whose gradients make one update (effective batch: --batch-size times this); "
                             "out of memory doubles it as the batch halves", check=positive, role="recipe")
    ema: float = opt(0.0, "exponential moving average of the weights with this decay (0.999); validation, "
                          "checkpoints and the final weights use the average; 0: off", check=below_one, role="recipe")
    average_top: int = opt(0, "a stage's final weights: the mean of its N best epochs' weights (BatchNorm statistics "
                              "too), kept when it scores no worse on the holdout than the best epoch; 0: off",
                           check=lambda v: None if v == 0 or v >= 2 else "0 (off) or 2 and more", role="recipe")
    backbone_lr_scale: float = opt(1.0, "the backbone learns at this times the head's rate (0.01: fastai's "
                                        "fine_tune); 1: one rate", check=lambda v: None if 0 < v <= 1 else
                                   "a number above 0, at most 1", role="recipe")
    drop_path: float = opt(0.0, "stochastic depth (drop-connect) rate of the backbone's blocks, where its constructor "
                                "takes one (EfficientNet: 0.2 by its own default); 0: the backbone's own",
                           check=below_one, role="recipe")
    steps_per_execution: int = opt(0, "batches each compiled training call runs (Keras's steps_per_execution); "
                                      "0: auto, 32 on TPUs, 1 elsewhere", check=non_negative, role="session")
    optimizer: str = opt("adam", "optimizer", ("adam", "sgd", "adamw"), role="recipe")
    loss: str = opt("cce", "cce: categorical cross-entropy; focal: focal loss; a number target (regression): mse "
                           "(cce's stand-in), huber, or bce-scaled (sigmoid output, cross-entropy on the target "
                           "scaled to 0-1)", ("cce", "focal", "mse", "huber", "bce-scaled"), role="recipe")
    label_smoothing: float = opt(0.0, "label smoothing of either loss", check=below_one, role="recipe")
    focal_gamma: float = opt(2.0, "focal loss focusing exponent; 0 with --focal-alpha 1 is the cross-entropy", check=non_negative,
                             role="recipe")
    focal_alpha: float = opt(1.0, "focal loss weight alpha (the paper's 0.25); 1: no weighting", check=positive,
                             role="recipe")
    class_weights: bool = opt(False, "weight classes by inverse training frequency", role="recipe")
    unfreeze: str = opt("all", "all: every backbone layer trains in stages 1 and 2; top: only the layers from the "
                               "registry's cut point on (the last blocks)", ("all", "top"), role="recipe")
    train_batchnorm: bool = opt(False, "train BatchNorm layers too (always so with --weights none)", role="recipe")
    dropout: float = opt(0.2, "dropout before the head (and after each hidden head layer)", check=below_one,
                         role="recipe")
    head_layers: int = opt(0, "hidden Dense layers in the head (python -m src.tune searches this)", check=non_negative,
                           role="model")
    head_units: int = opt(256, "width of each hidden head layer", check=positive, role="model")
    head_l2: float = opt(0.0, "L2 weight penalty of the head's Dense layers", check=non_negative, role="recipe")
    min_batch_size: int = opt(4, "out of memory: halve the batch down to this, then give up", check=positive,
                              role="session")
    resume: bool = opt(False, "continue the run in --out from its last finished epoch", role="session")
    accelerator: str = opt("auto", "tpu / gpu: an error when there is none; cpu; auto: the best found (a TPU that "
                                   "does not answer is said, then GPUs or the CPU)", ("auto", "tpu", "gpu", "cpu"),
                           role="session")
    time_limit: float = opt(0.0, "hours this process may train (a Kaggle session's limit, less a margin): it stops "
                                 "after the last epoch that fits, and --resume continues; 0: no limit",
                            check=non_negative, role="session")
    extra_data: str = opt("", "a second labelled folder (class folders or labels CSV) added to training only",
                          role="recipe")
    pseudo_labels: str = opt("", "a submission written by src.submit: its confidently predicted test images join "
                                 "training (never a holdout)", role="recipe")
    pseudo_threshold: float = opt(0.95, "the least probability of the predicted class for a pseudo-label",
                                  check=lambda v: None if 0 <= v <= 1 else "a probability from 0 to 1", role="recipe")
    targets: str = opt("", "label columns, one softmax head each (make_id,model_id); must include the "
                           "submission's column; empty: that column alone", role="task")
    loss_weights: str = opt("", "one loss weight per --targets column (0.3,1); empty: 1 each", role="recipe")
    head_scheme: str = opt("parallel", "parallel: heads side by side; chained: each head also sees the "
                                       "earlier heads' outputs (list coarse columns first)", ("parallel", "chained"),
                           role="model")
    head: str = opt("auto", "the head the task kind trains: auto (arcface for an identity task, else dense); dense: "
                            "a Dense output trained with the network; arcface: an ArcFace margin head on an embedding "
                            "(identity tasks); ridge or svr (a number target): a ridge or RBF support-vector regressor "
                            "on the frozen backbone's pooled features at --stage1-size, a run of its own that "
                            "src.submit blends with network runs", ("auto", "dense", "arcface", "ridge", "svr"),
                    role="model")
    margin: float = opt(0.3, "--head arcface: the additive angular margin (radians)", check=non_negative, role="recipe")
    scale: float = opt(30.0, "--head arcface: the scale s of the cosine logits", check=positive, role="recipe")
    subcenters: int = opt(1, "--head arcface: K sub-centers per identity (sub-center ArcFace); 1: plain ArcFace",
                          check=positive, role="model")
    embedding_dim: int = opt(512, "identity tasks: the embedding's width (the neck's Dense + BatchNorm)",
                             check=positive, role="model")
    tensorboard: bool = opt(False, "write Keras TensorBoard logs into RUN/tensorboard/<stage>/ "
                                   "(tensorboard --logdir RUN/tensorboard)", role="session")
    task: str = opt("", "what one answer is: label (one class per image), tags (multi-label) or number (alias "
                        "regression: a number per image); empty: read from "
                        "the target column's values (said in one line, saved in config.json)", check=task_flag,
                    role="task")
    metric: str = opt("", METRIC_HELP, check=metric_flag, role="task")
    class_order: str = opt("", "the target's classes in grade order, comma separated (No_DR,Mild,Severe): the "
                               "output order, which qwk weighs by; empty: sorted (text grades refused with qwk)",
                           role="task")
    final_stage: str = opt("best", "best: the final weights are the stage whose best --metric is best (ties to "
                                   "the lower val_loss, then the later stage); last: the recipe's last stage",
                           ("best", "last"), role="length")
    full_fit: str = opt("", "a finished run: train again on every training image (no holdout) with its settings, "
                            "each stage for the epochs the run's early stopping chose; the last epoch is kept; "
                            "src.submit names the run's holdout score as the reference", role="reference")
    soft_labels: str = opt("", "a K-fold run's oof_predictions.csv: training targets are --soft-weight x its "
                               "out-of-fold probabilities + (1 - --soft-weight) x the true one-hot label",
                           role="recipe")
    soft_weight: float = opt(SOFT_WEIGHT, "the out-of-fold probabilities' share of a --soft-labels target",
                             check=fraction, role="recipe")
    pseudo_soft: bool = opt(False, "pseudo-labels keep the submission's probabilities as targets instead of its most "
                                   "probable class (--pseudo-threshold still picks the images; 0: every one)",
                            role="recipe")
    sampling: str = opt("natural", "how training draws images: natural (as they come); balanced (each class "
                                   "equally often); sqrt (in proportion to the square root of its count)",
                        ("natural", "balanced", "sqrt"), role="recipe")
    metadata: bool = opt(False, "a metadata branch: dense layers over the labels CSV's other columns (numbers, "
                                "categories; with --group-column each one against its group) joined to the image "
                                "features before the head; test rows from test-metadata.csv", role="model")

    def check(self) -> None:
        """Raise naming the flags that do not fit together."""
        super().check()
        check_refit_options(self)
        if self.lr_warmup_epochs > 0 and self.schedule != "cosine":
            raise KitError(f"--lr-warmup-epochs {self.lr_warmup_epochs:g}: needs --schedule cosine (Keras's "
                           "CosineDecay has the warm-up; ExponentialDecay has none)")
        if self.metadata and (self.mixup > 0 or self.cutmix > 0):
            raise KitError("--metadata: MixUp and CutMix mix images, not their table rows: use --mixup 0 --cutmix 0")
        planned = {"--stage1-epochs": self.stage1_epochs, "--stage2-epochs": self.stage2_epochs}
        for flag, epochs in list(planned.items())[:self.stages]:
            if self.lr_warmup_epochs >= epochs:
                raise KitError(f"--lr-warmup-epochs {self.lr_warmup_epochs:g}: expected fewer than {flag} {epochs} "
                               "(the decay needs epochs after the warm-up)")


# ---------------------------------------------------------------- screening
@dataclasses.dataclass
class ScreenConfig(DataOptions, PipelineOptions):
    """Screen pretrained backbones, each frozen under a fresh head."""

    backbones: str = opt("efficientnet_b0,efficientnet_b0_ns,resnet50,mobilenetv3_large",
                         "comma-separated backbone names (python -m src.backbones lists them)")
    epochs: int = opt(3, "epochs of head training per backbone", check=positive)
    mode: str = opt("auto", "full: frozen backbone in the model; features: cached pooled features; "
                    "auto: features when --augment none, else full", ("auto", "full", "features"))
    weights: str = opt("imagenet", "imagenet (the backbone's weight tag: noisy-student for efficientnet_b0_ns), "
                                   "none, or a weights file/folder")
    learning_rate: float = opt(1e-3, "Adam learning rate of the head", check=positive)
    dropout: float = opt(0.2, "dropout before the head's Dense layer", check=below_one)
    out: str = opt("runs/screen", "folder for screening.csv, screening.png and config.json")
    features_cache: str = opt("runs/features", "folder of cached pooled features (features mode)")
    resume: bool = opt(False, "skip backbones that already have a row without error in screening.csv")
    accelerator: str = opt("auto", "tpu / gpu: an error when there is none; cpu; auto: the best found",
                           ("auto", "tpu", "gpu", "cpu"))
    metric: str = opt("", METRIC_HELP.replace("picks the best epoch, checkpoint and early stop", "ranks the backbones"),
                      check=metric_flag)


# ---------------------------------------------------------------- submission
# ---------------------------------------------------------------- the ledger
# ---------------------------------------------------------------- head search
@dataclasses.dataclass
class TuneConfig(DataOptions, PipelineOptions):
    """Search the head's hyperparameters with Hyperband on a frozen backbone's cached features."""

    backbone: str = opt("efficientnet_b0", "backbone name or NAME:TAG (python -m src.backbones lists them), or "
                                           "hub:<keras-hub preset> (a preset name, kaggle:// handle or folder)")
    weights: str = opt("imagenet", "imagenet (the backbone's weight tag: noisy-student for efficientnet_b0_ns), "
                                   "none, or a weights file/folder")
    max_epochs: int = opt(20, "Hyperband: most epochs a trial trains", check=positive)
    factor: int = opt(3, "Hyperband: reduction factor between brackets", check=lambda v: None if v >= 2 else "2 or more")
    iterations: int = opt(1, "Hyperband: times the whole schedule runs", check=positive)
    out: str = opt("runs/tune", "folder for trials.csv, trials.png, best_config.json and the tuner's state")
    features_cache: str = opt("runs/features", "folder of cached pooled features (shared with screening)")
    overwrite: bool = opt(False, "start the search again instead of resuming the one in --out")
    metric: str = opt("", METRIC_HELP.replace("picks the best epoch, checkpoint and early stop", "is Hyperband's "
                                              "objective"), check=metric_flag)


# ---------------------------------------------------------------- pruning
@dataclasses.dataclass
class PruneConfig:
    """Prune a run's weights by magnitude, fine-tune briefly, report accuracy against sparsity."""

    run: str = opt("", "training run folder (python -m src.train wrote it)")
    sparsity: float = opt(0.4, "share of each pruned kernel's weights set to zero in the saved model", check=fraction)
    sweep: str = opt("0.2,0.4,0.6,0.8", "more sparsities to report (comma separated; empty: --sparsity only)")
    epochs: int = opt(1, "fine-tuning epochs after pruning (0: none)", check=non_negative)
    lr: float = opt(1e-4, "fine-tuning learning rate (Adam)", check=positive)
    batch_size: int = opt(32, "images per batch", check=positive)
    min_params: int = opt(1024, "kernels smaller than this stay dense", check=positive)
    out: str = opt("", "output folder; empty: <run>/prune")
    metric: str = opt("", "the holdout metric of the table; empty: the run's (its config.json)", check=metric_flag)


# ---------------------------------------------------------------- data report
@dataclasses.dataclass
class EdaConfig(DataOptions):
    """Report on a competition's images and labels."""

    out: str = opt("runs/eda", "folder for the report's figures and tables")
    samples_per_class: int = opt(6, "images per class in samples.png")
    max_classes_shown: int = opt(12, "classes (most common first) in samples.png")


# ---------------------------------------------------------------- demo competition
@dataclasses.dataclass
class DemoConfig:
    """Build the demo competition from scikit-learn's digits."""

    out: str = opt("data/demo", "folder to write the demo competition into (--task segmentation: "
                                "data/demo-segmentation unless given)")
    task: str = opt("label", "label: the digits as classes (folders, Id,Category); segmentation: each digit's strokes "
                             "as its mask (HuBMAP's layout: train.csv id,img_height,img_width,rle; sample id,rle)",
                    ("label", "segmentation"))
    seed: int = opt(0, "seed for sizes, colours and the train/test split")
    test_fraction: float = opt(0.2, "share of digits that become test images", check=fraction)
    force: bool = opt(False, "rebuild even when the folder already holds this demo")


# ---------------------------------------------------------------- TFRecord shards
@dataclasses.dataclass
class TfrecordsConfig(DataOptions):
    """Write a competition's saved split and test images into TFRecord shards."""

    out: str = opt("", "folder for the shards; empty: runs/tfrecords/<data folder name>")
    shard_mb: float = opt(100.0, "image bytes per shard, in MB (Kaggle TPU notebooks use 100-200)", check=positive)
    overwrite: bool = opt(False, "replace shards already in --out")


# ---------------------------------------------------------------- Kaggle
@dataclasses.dataclass
class BackbonesConfig:
    """Print the backbone registry, a row per architecture: parameters, size, feature width, weight tags."""

    params: bool = opt(True, "count each backbone's parameters (builds every model: about a minute); "
                             "--no-params skips it")
