"""--head ridge|svr: a ridge or support-vector regressor on a frozen backbone's pooled features, as a run.

    python -m src.train --data data/paw --backbone efficientnet_b0 --head svr --stage1-size 224 224 --out runs/svr
    python -m src.submit --run runs/effb0 --run runs/svr      # blended with the network, weights fitted for rmse

Several PetFinder Pawpularity solutions blended their networks with support-vector regressors on the
networks' embeddings. The run is an ordinary run folder (config.json, class_map.json, the split, one
finished stage "stage1" with its weights, holdout_predictions.csv, a one-row history.csv) plus regressor.npz; its model is
the backbone and an EmbeddingRegressor layer (src.models.number_head), so src.submit predicts it with
TTA and blends it as any other run. Features are computed from the very backbone the weights file
keeps (with --weights none a random one: the seed makes it), on the split's training images.
"""
from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import pandas as pd

from src.core.files import write_csv
from src.core.metric_choice import monitor
from src.core.provenance import git_commit
from src.hardware.accelerator import pick_accelerator
from src.models.backbones import get_spec
from src.models.classifier import HeadSpec, build_classifier
from src.models.number_head import REGRESSOR_FILE, EmbeddingRegressor, fit_regressor, save_regressor
from src.pipeline.images import make_eval_dataset
from src.runs.state import RunState
from src.training.holdout import write_number_holdout
from src.training.two_stage import prepare_run, run_folder_for


def fit_embedding_head(cfg) -> dict:
    """Fit --head ridge|svr into its run folder; return the summary (the holdout metric, the run's folder)."""
    cfg = dataclasses.replace(cfg, stages=1, warmup_epochs=0)  # one stage: the features' size is stage 1's
    spec = get_spec(cfg.backbone)
    run = run_folder_for(cfg)
    start = time.perf_counter()
    with run.lock():
        cfg, data = prepare_run(cfg, run)  # refuses a target that is no number before writing (check_head)
        accelerator = pick_accelerator(request=cfg.accelerator)
        keras.utils.set_random_seed(cfg.seed)
        size = tuple(cfg.stage1_size)
        with accelerator.strategy.scope():
            model = build_classifier(spec, size, 1, cfg.weights, HeadSpec(regressor={}))
        features = keras.Model(model.inputs, model.layers[-1].input)  # the pooled features the head reads
        opts = dataclasses.replace(cfg, image_size=size, cache="none", augment="none")
        arrays = {role: pooled(features, frame, opts, accelerator) for role, frame in
                  (("train", data.train), ("val", data.val))}
        params = fit_regressor(cfg.head, arrays["train"], data.y_train, data.class_map.scale)
        save_regressor(run.path / REGRESSOR_FILE, params)
        model.save_weights(str(run.weights("stage1")))  # the backbone's: the regressor layer has none
        predicted = predict_numbers(params, arrays["val"]) if len(data.val) else None
        value = write_number_holdout(cfg, data, run, predicted) if predicted is not None else None
        state = RunState()
        state.record_stage("stage1", {"score": value, "val_loss": None, "epoch": 1},
                           time.perf_counter() - start, accelerator.as_record(), git_commit())
        state.keep("stage1", by="last")
        run.save_state(state)
        # one row, as src.ledger and the reports read a run's history: the fit is its one "epoch"
        write_csv(run.history_file, pd.DataFrame({"stage": ["stage1"], "epoch": [1], "val_loss": [np.nan],
                                                  monitor(cfg.metric): [np.nan if value is None else value]}))
    what = f"{len(params['support'])} support vectors" if "support" in params else "a ridge on the features"
    line = f"holdout {cfg.metric}: {value:.4f} ({run.holdout_file})" if value is not None else "no holdout"
    print(f"--head {cfg.head}: {what} of {spec.name} at {size[0]}x{size[1]}; {line}")
    return {"holdout_score": value, "metric": cfg.metric, "kept": "stage1", "out": str(run.path)}


def pooled(features, frame, opts, accelerator) -> np.ndarray:
    """Return the pooled features of a frame's images (in its order), padding rows cut off."""
    if not len(frame):
        return np.zeros((0, int(features.outputs[0].shape[-1])), dtype=np.float32)
    images = make_eval_dataset(frame, np.zeros(len(frame)), opts, accelerator.batch_multiple).map(lambda x, y: x)
    return np.asarray(features.predict(images, verbose=0))[:len(frame)]


def predict_numbers(params: dict, features: np.ndarray) -> np.ndarray:
    """Return the regressor's numbers for features, through the same layer src.submit's model uses."""
    return np.asarray(EmbeddingRegressor(params)(features.astype(np.float32))).reshape(-1)
