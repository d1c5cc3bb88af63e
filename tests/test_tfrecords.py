"""TFRecord shards: what is written reads back equal, and jobs read shards as they read folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.core.config import DataOptions, PipelineOptions
from src.core.errors import KitError
from tests.conftest import make_folder_competition


def shards_of(data: Path, out: Path, *flags) -> Path:
    from src.tfrecords import main

    return main(["--data", str(data), "--out", str(out), *flags])


def test_round_trip_keeps_bytes_ids_and_every_label_column(csv_comp, tmp_path):
    import tensorflow as tf

    from src.data.competition import load_competition
    from src.data.splits import load_or_make_split
    from src.data.shards import parse_record, shard_count

    out = shards_of(csv_comp, tmp_path / "shards", "--shard-mb", "0.002",  # a few images per shard
                    "--label-column", "make_id,model_id")  # the sample names model_id alone
    opts = DataOptions(data=str(csv_comp), label_column="make_id,model_id")
    split = load_or_make_split(load_competition(opts), opts).set_index("id")
    shards = sorted(out.glob("train-*.tfrec"))
    assert len(shards) > 2 and sum(shard_count(p) for p in shards) == len(split)
    seen = 0
    for shard in shards:
        fold = int(shard.name.split("-")[1][1:])
        for raw in tf.data.TFRecordDataset(str(shard)):
            record = {k: v.numpy() for k, v in parse_record(raw, ["make_id", "model_id"]).items()}
            row = split.loc[record["id"].decode()]
            assert record["image"] == Path(row["path"]).read_bytes()
            assert record["label/make_id"].decode() == str(row["make_id"])
            assert record["label/model_id"].decode() == row["model_id"]
            assert row["fold"] == fold
            seen += 1
    assert seen == len(split)
    test = sorted(out.glob("test-*.tfrec"))
    ids = [parse_record(r)["id"].numpy().decode() for p in test for r in tf.data.TFRecordDataset(str(p))]
    assert ids == ["x2", "x0", "x1"]  # the sample submission's order
    manifest = json.loads((out / "tfrecords.json").read_text())
    assert manifest["label_types"] == {"make_id": "int", "model_id": "str", "car": "str"} or \
        set(manifest["label_columns"]) >= {"make_id", "model_id"}


def test_datasets_from_shards_match_datasets_from_folders(tmp_path):
    from src.data.competition import load_competition
    from src.pipeline.images import make_eval_dataset, make_predict_dataset, make_train_dataset
    from src.data.splits import load_or_make_split

    data = make_folder_competition(tmp_path / "comp", per_class=5, n_test=4)
    out = shards_of(data, tmp_path / "shards", "--shard-mb", "0.003")
    opts = PipelineOptions(image_size=(16, 16), cache="none", batch_size=4, augment="none")
    frames = {}
    for source in (data, out):
        comp = load_competition(DataOptions(data=str(source)))
        split = load_or_make_split(comp, DataOptions(data=str(source)))
        frames[source] = (comp, split)
    (folder_comp, folder_split), (shard_comp, shard_split) = frames[data], frames[out]
    assert shard_comp.class_maps[shard_comp.target].values == folder_comp.class_maps[folder_comp.target].values

    def pairs(frame, comp):
        labels = comp.class_maps[comp.target].encode(frame[comp.target])
        images = np.concatenate([x.numpy() for x, _ in make_eval_dataset(frame, labels, opts)])
        got = np.concatenate([y.numpy() for _, y in make_eval_dataset(frame, labels, opts)])
        return dict(zip(frame["id"], zip(got, images)))

    for role in ("train", "val"):
        folder_pairs = pairs(folder_split[folder_split["split"] == role], folder_comp)
        shard_pairs = pairs(shard_split[shard_split["split"] == role], shard_comp)
        assert folder_pairs.keys() == shard_pairs.keys()
        for image_id, (label, image) in folder_pairs.items():
            assert shard_pairs[image_id][0] == label
            np.testing.assert_array_equal(shard_pairs[image_id][1], image)
    # prediction: ids travel with the images, whatever order the frame asks in
    test = shard_comp.test.iloc[::-1]
    ids = [i.decode() for _, batch in make_predict_dataset(test, opts) for i in batch.numpy()]
    assert sorted(ids) == sorted(folder_comp.test["id"])
    # training: every (image, label) pair of an epoch is one of the folder's pairs
    train = shard_split[shard_split["split"] == "train"]
    y = shard_comp.class_maps[shard_comp.target].encode(train[shard_comp.target])
    labels = np.concatenate([y_.numpy() for _, y_ in make_train_dataset(train, y, opts)])
    assert sorted(labels) == sorted(y)


def test_a_frame_that_is_not_whole_shards_is_refused(tmp_path):
    from src.data.competition import load_competition
    from src.pipeline.images import make_eval_dataset

    data = make_folder_competition(tmp_path / "comp", per_class=4, n_test=2)
    out = shards_of(data, tmp_path / "shards")
    comp = load_competition(DataOptions(data=str(out)))
    part = comp.train.iloc[1:]
    with pytest.raises(ValueError, match="whole shards"):
        make_eval_dataset(part, np.zeros(len(part), np.int32), PipelineOptions(image_size=(16, 16)))


def test_a_shard_stream_declares_its_length_and_a_short_shard_fails(tmp_path):
    """Keras counts the batches of a shard stream (no "ran out of data" at its end); a shard holding fewer
    records than index.csv names is an error, not a shorter epoch."""
    import tensorflow as tf

    from src.data.competition import load_competition
    from src.pipeline.images import make_eval_dataset

    data = make_folder_competition(tmp_path / "comp", per_class=4, n_test=2)
    out = shards_of(data, tmp_path / "shards")
    train = load_competition(DataOptions(data=str(out))).train
    labels, opts = np.zeros(len(train), np.int32), PipelineOptions(image_size=(16, 16), cache="none", batch_size=5)
    assert int(make_eval_dataset(train, labels, opts).cardinality()) == -(-len(train) // 5)
    shard = Path(train["shard"].iloc[-1])  # the stream's last shard: an earlier one would trip the id check
    shard = shard if shard.is_absolute() else out / shard
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
    with tf.io.TFRecordWriter(str(shard)) as writer:  # it loses its last record: the stream ends one row early
        for record in records[:-1]:
            writer.write(record)
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain"):
        for _ in make_eval_dataset(train, labels, opts):
            pass


def test_existing_shards_are_not_overwritten_and_folds_must_match(tmp_path):
    data = make_folder_competition(tmp_path / "comp", per_class=4, n_test=2)
    out = shards_of(data, tmp_path / "shards")
    with pytest.raises(KitError, match="--overwrite"):
        shards_of(data, out)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "other-00-10.tfrec").write_bytes(b"someone else's")
    with pytest.raises(KitError, match="did not write"):
        shards_of(data, foreign, "--overwrite")
    assert (foreign / "other-00-10.tfrec").read_bytes() == b"someone else's"
    from src.data.competition import load_competition

    with pytest.raises(KitError, match="written with --folds 0"):
        load_competition(DataOptions(data=str(out), folds=3))


def test_train_and_submit_read_shards(tmp_path):
    from src.submit import main as submit
    from src.train import main as train

    data = make_folder_competition(tmp_path / "comp", per_class=6, n_test=4)
    out = shards_of(data, tmp_path / "shards", "--shard-mb", "0.003")
    summary = train(["--data", str(out), "--backbone", "tiny_resnet", "--weights", "none", "--batch-size", "4",
                     "--stage1-size", "16", "16", "--stage1-epochs", "1", "--stage2-size", "20", "20", "--stage2-epochs", "1",
                     "--augment", "none", "--out", "runs/shards"])
    holdout = pd.read_csv(Path(summary["out"]) / "holdout_predictions.csv", dtype=str)
    index = pd.read_csv(out / "index.csv", dtype=str)
    val = index[(index["role"] == "train") & (index["fold"] == "0")]
    assert sorted(holdout["id"]) == sorted(val["id"])  # the shards' validation fold, nothing else
    assert dict(zip(holdout["id"], holdout["label"])) == dict(zip(val["id"], val["Category"]))
    result = submit(["--data", str(out), "--run", "runs/shards", "--name", "from-shards", "--out", "subs"])
    assert (Path("subs") / "from-shards.wrong.png").is_file()  # figure images read from the shards
    written = pd.read_csv(result["path"], dtype=str)
    assert list(written["Id"]) == [f"t{i}.jpg" for i in range(4)]


def test_screening_reads_shards(tmp_path):
    from src.screen_backbones import main as screen

    data = make_folder_competition(tmp_path / "comp", per_class=5, n_test=2)
    out = shards_of(data, tmp_path / "shards", "--shard-mb", "0.003")
    rows = screen(["--data", str(out), "--backbones", "tiny_resnet", "--weights", "none", "--mode", "features",
                   "--epochs", "1", "--image-size", "16", "16", "--batch-size", "4", "--augment", "none"])
    assert rows["error"].fillna("").eq("").all() and rows["best_val_accuracy"].notna().all()
