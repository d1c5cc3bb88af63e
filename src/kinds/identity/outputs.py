"""What an identity run keeps when it ends: every labelled image's embedding, the holdout by nearest
neighbours and the new answer's threshold chosen there (RUN/embeddings.npz, RUN/identity.json).

    accuracy = write_identity_holdout(cfg, spec, data, run, kept, accelerator)  # the kept stage's weights
    value, reference = identity_holdout_score(cfg, data, run)                  # MAP@k beside the trivial answer's

The embeddings are the gallery src.submit searches (the holdout's images join it there); the threshold is
what the run's own holdout, which holds identities never trained on, says for the metric. Auxiliary heads
(--targets Id,species) answer their columns in holdout_predictions.csv, with their accuracy; nothing else.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import read_json, write_csv, write_json
from src.hardware.distributed import predict_locally
from src.inference.reference import identity_reference
from src.kinds.identity.neighbours import (answer_texts, choose_threshold, embeddings_file, identity_file, identity_scores,
                                      identity_truth, rank_with_new)
from src.models.classifier import layer_name
from src.models.embedding import embedding_model
from src.pipeline.images import make_eval_dataset
from src.training.multitask import loss_weights
from src.training.stages import build_stage_model

def embed(model, frame: pd.DataFrame, cfg, size, accelerator, auxiliary=()) -> tuple:
    """Return (the embedding of each row's image, {auxiliary column: its head's probabilities}), frame order.

    The network is cut at its embedding; auxiliary (--targets' other columns) adds their softmax heads' outputs
    to the same pass. Several machines never have them (multi-task training is refused there).
    """
    opts = dataclasses.replace(cfg, image_size=tuple(size), cache="none", batch_size=cfg.batch_size * accelerator.replicas)
    images = make_eval_dataset(frame, np.zeros(len(frame), np.int32), opts, accelerator.batch_multiple)
    images = images.map(lambda x, *rest: x)
    if auxiliary:
        cut = keras.Model(model.inputs, [embedding_model(model).output,
                                         *(model.get_layer(f"head_{layer_name(c)}").output for c in auxiliary)])
        found = [np.asarray(part)[:len(frame)] for part in cut.predict(images, verbose=0)]
        return found[0], dict(zip(auxiliary, found[1:]))
    cut = embedding_model(model)
    found = predict_locally(cut, images) if accelerator.kind == "multi-worker" else cut.predict(images, verbose=0)
    return np.asarray(found)[:len(frame)], {}  # padding rows come last


def write_identity_outputs(cfg, data, run, stage, accelerator, model) -> float | None:
    """Write the embeddings, the holdout's answers and the threshold; return the holdout's top-1 accuracy
    (None for a full-fit: no holdout)."""
    frame = pd.concat([data.train, data.val], ignore_index=True)
    auxiliary = [column for column in data.heads if column != data.target]
    vectors, aux_probs = embed(model, frame, cfg, stage.size, accelerator, auxiliary)
    ids = frame["id"].astype(str).to_numpy().astype("U")  # fixed-width text: loads without pickle
    np.savez(embeddings_file(run.path), ids=ids, embeddings=vectors.astype(np.float32))
    if not len(data.val):
        return None
    class_map, k = data.class_map, int(cfg.metric.split("@")[1]) if "@" in cfg.metric else 5
    gallery = vectors[:len(data.train)]
    scores = identity_scores(vectors[len(data.train):], gallery, class_map.encode(data.train[data.target]),
                             len(class_map.values))
    truth = identity_truth(data.val[data.target], class_map, set(data.train[data.target].astype(str)))
    chosen = choose_threshold(scores, truth, k)
    print(chosen.line(class_map.new_label, cfg.metric))
    ranked = rank_with_new(scores, chosen.threshold, k)
    names = [str(v) for v in class_map.values] + [class_map.new_label]
    holdout = pd.DataFrame({
        "id": data.val["id"].to_numpy(), "label": [names[i] for i in truth], "predicted": [names[i] for i in ranked[:, 0]],
        "top": answer_texts(ranked, class_map), "best_similarity": scores.max(axis=1)})
    accuracies = {}
    for column, probs in aux_probs.items():  # each auxiliary head's answer, so its accuracy can be checked
        guess = data.heads[column].decode(probs[len(data.train):].argmax(axis=1))
        holdout[column], holdout[f"{column}_predicted"] = data.val[column].to_numpy(), guess
        accuracies[column] = float((holdout[column].astype(str) == holdout[f"{column}_predicted"].astype(str)).mean())
        print(f"auxiliary head {column}: holdout accuracy {accuracies[column]:.4f} (not used by the answer)")
    write_csv(run.holdout_file, holdout)
    write_json(identity_file(run.path), {"new_label": class_map.new_label, "threshold": chosen.threshold,
                                         "metric": cfg.metric, "holdout": chosen.score, "never_new": chosen.without,
                                         "unseen_images": int((truth == len(class_map.values)).sum()),
                                         "auxiliary_accuracy": accuracies})
    return float((ranked[:, 0] == truth).mean())


def write_identity_holdout(cfg, spec, data, run, kept, accelerator) -> float | None:
    """Build the kept stage's network and write the run's identity outputs; return write_identity_outputs'."""
    model = build_stage_model(kept, cfg, spec, data, run.weights(kept.name), accelerator)
    return write_identity_outputs(cfg, data, run, kept, accelerator, model)


def identity_holdout_score(cfg, data, run) -> tuple:
    """Return (the threshold's holdout MAP@k from RUN/identity.json, the most frequent identities' Reference)."""
    record = read_json(identity_file(run.path), "the run's identity.json")
    truth = identity_truth(data.val[data.target], data.class_map, set(data.train[data.target].astype(str)))
    k = int(cfg.metric.split("@")[1]) if "@" in cfg.metric else 5
    return record.get("holdout"), identity_reference(data.y_train, truth, len(data.class_map.values), k)


def identity_floor(cfg, data) -> None:
    """Return None: the per-epoch metric (the margin head's MAP on known identities) compares with no trivial
    answer the holdout's nearest neighbours are judged by."""
    return None


def auxiliary_heads(cfg, target: str, heads: dict) -> str:
    """Return the line saying an identity's auxiliary heads (--targets Id,species), '' without any; refuse
    --head-scheme chained (the heads sit side by side on the embedding, src.models.classifier.identity_outputs)."""
    if len(heads) < 2:
        return ""
    if cfg.head_scheme == "chained":
        raise KitError(f"--head-scheme chained: column {target} is an identity, whose auxiliary heads sit side by "
                       "side on its embedding; leave --head-scheme out (parallel)")
    weights = dict(zip(heads, loss_weights(cfg, list(heads))))
    others = [f"{column} ({len(m.values)} classes, loss weight {weights[column]:g})" for column, m in heads.items()
              if column != target]
    return (f"auxiliary heads: {', '.join(others)}: softmax heads on the embedding beside {target}'s margin head "
            f"(loss weight {weights[target]:g}); nearest neighbours answer {target}, the auxiliary heads only train")
