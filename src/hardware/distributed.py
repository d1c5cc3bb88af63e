"""Training across several machines (MultiWorkerMirroredStrategy from TF_CONFIG).

Keras 3's Model.fit does not run under MultiWorkerMirroredStrategy with the TensorFlow
backend (keras-team/keras#20585, open), so this module runs the same epochs with a small loop
of its own: strategy.run per step, gradients all-reduced by the optimizer, the same Keras
callbacks (BackupAndRestore, early stopping, checkpoint, CSV log) driven through a
CallbackList. BatchNorm moving statistics are updated by each worker from its own shard, so
they are averaged across workers after every epoch: every worker ends with the same weights.

    history = fit_multi_worker(model, train_ds, val_ds, epochs, callbacks, strategy, loss_fn)
"""
from __future__ import annotations

import numpy as np


def shard_by_data(dataset):
    """Return the dataset with DATA auto-sharding (images are read in map, not by a file reader)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit_multi_worker(model, train_ds, val_ds, epochs: int, callbacks, strategy, loss_fn, class_weights=None,
                     initial_epoch: int = 0):
    """Train like Model.fit(train_ds, validation_data=val_ds, epochs, callbacks) across workers; return the logs.

    initial_epoch: epochs already finished (a resumed stage); BackupAndRestore brings their weights back.
    """
    import keras

    steps = make_steps(model, strategy, loss_fn, class_weights)
    train_dist = strategy.experimental_distribute_dataset(shard_by_data(train_ds))
    val_dist = strategy.experimental_distribute_dataset(shard_by_data(val_ds))
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model, epochs=epochs)
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        train_logs = run_epoch(train_dist, steps["train"], callback_list)
        steps["sync"]()
        val_logs = run_epoch(val_dist, steps["eval"], None)
        logs = {**train_logs, **{f"val_{k}": v for k, v in val_logs.items()}}
        print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return logs


def run_epoch(dataset, step, callback_list) -> dict:
    """Return {loss, accuracy} over one pass of a distributed dataset (sums reduced across workers)."""
    loss_sum, correct, count = 0.0, 0.0, 0.0
    for batch, (x, y) in enumerate(dataset):
        if callback_list is not None:
            callback_list.on_train_batch_begin(batch)
        batch_loss, batch_correct, batch_count = (float(v) for v in step(x, y))
        loss_sum, correct, count = loss_sum + batch_loss, correct + batch_correct, count + batch_count
        if callback_list is not None:
            callback_list.on_train_batch_end(batch, {"loss": batch_loss / max(batch_count, 1.0)})
    return {"loss": loss_sum / max(count, 1.0), "accuracy": correct / max(count, 1.0)}


def make_steps(model, strategy, loss_fn, class_weights=None) -> dict:
    """Return the compiled train step, eval step and BatchNorm-statistics sync for this model."""
    import tensorflow as tf

    weights = None if class_weights is None else tf.constant(
        [class_weights[i] for i in range(len(class_weights))], tf.float32)

    def sums(y, probs, per_example):
        correct = tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(probs, -1)), tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(correct), tf.cast(tf.shape(y)[0], tf.float32)

    def train_replica(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = loss_fn(y, probs)
            if weights is not None:
                per_example = per_example * tf.reduce_sum(y * weights, axis=-1)
            # Mean over the global batch: the optimizer sums gradients across replicas.
            local_count = tf.cast(tf.shape(y)[0], tf.float32)
            global_count = tf.distribute.get_replica_context().all_reduce("sum", local_count)
            loss = tf.reduce_sum(per_example) / tf.maximum(global_count, 1.0)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(y, probs, per_example)

    def eval_replica(x, y):
        probs = model(x, training=False)
        return sums(y, probs, loss_fn(y, probs))

    def reduced(replica_fn):
        @tf.function
        def step(x, y):
            results = strategy.run(replica_fn, args=(x, y))
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]
        return step

    variables = [v for v in model.non_trainable_variables if "moving" in v.path]

    @tf.function
    def sync():
        values = strategy.run(lambda: [tf.identity(v.value) for v in variables])
        for variable, value in zip(variables, values):
            variable.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None))

    return {"train": reduced(train_replica), "eval": reduced(eval_replica),
            "sync": sync if variables else (lambda: None)}


def predict_locally(model, dataset) -> np.ndarray:
    """Return class probabilities for every image, each worker on its own (no collective needed)."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in dataset], axis=0)
