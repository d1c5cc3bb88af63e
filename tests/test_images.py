import os
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from src.core.config import PipelineOptions
from src.data.imagefiles import scan_images
from src.pipeline import images
from src.pipeline.decode import resize, unsharp_mask
from src.pipeline.images import (jpeg_scale_index, load_image, make_eval_dataset, make_predict_dataset,
                                 make_train_dataset, usable_cores)
from tests.conftest import write_image


def frame_for(paths, ids=None) -> pd.DataFrame:
    """Return the frame the builders take (path, width, height, orientation), as the data layer makes it."""
    scan = scan_images(paths)
    scan["id"] = ids if ids is not None else [f"i{k}" for k in range(len(paths))]
    return scan


def decode_one(path, size, mode="stretch", sharpen=0.0) -> np.ndarray:
    row = frame_for([path]).iloc[0]
    opts = PipelineOptions(image_size=size, resize=mode, sharpen=sharpen)
    inputs = {"path": tf.constant(str(path)), "orientation": tf.constant(int(row.orientation)),
              "scale": tf.constant(int(jpeg_scale_index(frame_for([path]), size)[0]))}
    return load_image(inputs, opts).numpy()


@pytest.mark.parametrize("mode, fmt", [("L", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "jpg"),
                                       ("RGB", "bmp"), ("RGB", "webp"), ("RGBA", "webp")])
def test_every_colour_mode_decodes_to_rgb(tmp_path, mode, fmt):
    path = write_image(tmp_path / f"x.{fmt}", size=(20, 16), colour=(40, 160, 220), mode=mode, pattern=False)
    image = decode_one(path, (16, 20))
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert image.shape == (16, 20, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(float) - expected).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    path = write_image(tmp_path / "o.png", size=(12, 8), orientation=orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    image = decode_one(path, expected.shape[:2])
    assert frame_for([path]).iloc[0].orientation == orientation
    np.testing.assert_array_equal(image, expected)


def test_exif_orientation_in_a_jpeg(tmp_path):
    path = write_image(tmp_path / "o.jpg", size=(32, 16), orientation=6)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), dtype=float)
    assert expected.shape == (32, 16, 3)
    assert np.abs(decode_one(path, (32, 16)).astype(float) - expected).mean() < 4


def test_resize_modes(tmp_path):
    wide = tf.ones([20, 40, 3]) * 200.0  # height 20, width 40
    stretch = resize(wide, (16, 16), "stretch").numpy()
    assert stretch.shape == (16, 16, 3) and np.allclose(stretch, 200)
    pad = resize(wide, (16, 16), "pad").numpy()
    assert np.allclose(pad[:4], 0) and np.allclose(pad[-4:], 0) and np.allclose(pad[4:12], 200)
    crop = resize(wide, (16, 16), "crop").numpy()
    assert crop.shape == (16, 16, 3) and np.allclose(crop, 200)  # fills the frame, no black bands
    small = tf.ones([6, 10, 3]) * 200.0
    longest = resize(small, (16, 16), "longest").numpy()
    assert longest.shape == (16, 16, 3)
    assert np.count_nonzero(longest[..., 0] > 100) == 60  # kept at 10x6: never enlarged
    shrink = resize(tf.ones([30, 60, 3]) * 200.0, (16, 16), "longest").numpy()
    assert np.count_nonzero(shrink[..., 0] > 100) == 16 * 8  # longest side brought down to 16


def test_crop_keeps_the_centre(tmp_path):
    image = np.zeros([10, 30, 3], np.float32)
    image[:, 10:20] = 255  # a bright centre third
    crop = resize(tf.constant(image), (10, 10), "crop").numpy()
    assert crop.mean() > 250


def test_unsharp_mask_raises_edge_contrast_and_leaves_flat_areas():
    image = np.full([12, 12, 3], 100, np.float32)
    image[:, 6:] = 150
    sharp = unsharp_mask(tf.constant(image), 1.0).numpy()
    assert sharp[:, 5].mean() < 100 and sharp[:, 6].mean() > 150
    np.testing.assert_allclose(sharp[:, :3], 100, atol=1e-3)


def test_big_jpegs_decode_at_reduced_scale_without_losing_the_picture(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(500, 400), colour=(30, 120, 200))
    frame = frame_for([path])
    assert list(jpeg_scale_index(frame, (64, 64))) == [2]     # 1/4 scale still covers 64x64
    assert list(jpeg_scale_index(frame, (224, 224))) == [0]   # 1/2 would go below 224: full decode
    reduced = decode_one(path, (64, 64)).astype(float)
    full = tf.image.resize(np.asarray(Image.open(path).convert("RGB"), np.float32), [64, 64],
                           antialias=True).numpy()
    assert np.abs(reduced - full).mean() < 4


@pytest.fixture
def seven_images(tmp_path):
    paths = [write_image(tmp_path / "imgs" / f"{k}.png", size=(16 + k, 16), colour=(k * 30, 50, 90))
             for k in range(7)]
    return frame_for(paths, ids=[f"id{k}" for k in range(7)])


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_cache_serves_later_epochs_without_the_files(seven_images, cache):
    opts = PipelineOptions(image_size=(16, 16), cache=cache, batch_size=3)
    ds = make_eval_dataset(seven_images, np.arange(7), opts)
    first = np.concatenate([x.numpy() for x, _ in ds])
    for path in seven_images["path"]:
        os.remove(path)
    second = np.concatenate([x.numpy() for x, _ in ds])  # decoding now would fail: files are gone
    np.testing.assert_array_equal(first, second)




def test_predict_dataset_keeps_order_ids_and_the_remainder(seven_images):
    ds = make_predict_dataset(seven_images, PipelineOptions(image_size=(16, 16), batch_size=3, cache="none"))
    batches = list(ds)
    assert [len(ids) for _, ids in batches] == [3, 3, 1]
    ids = [i.decode() for _, b in batches for i in b.numpy()]
    assert ids == [f"id{k}" for k in range(7)]
    red = np.concatenate([x.numpy() for x, _ in batches])[:, 8, 8, 0]
    assert np.allclose(red, np.arange(7) * 30, atol=2)  # each image stays beside its own id


def test_train_dataset_shuffles_each_epoch_and_sees_every_image(seven_images):
    opts = PipelineOptions(image_size=(16, 16), batch_size=2, augment="light")
    ds = make_train_dataset(seven_images, np.arange(7), opts, seed=1)
    epochs = [np.concatenate([y.numpy() for _, y in ds]) for _ in range(3)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    x, _ = next(iter(ds))
    assert x.dtype == tf.float32 and x.shape[1:] == (16, 16, 3)
    assert 0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255
    dropped = make_train_dataset(seven_images, np.arange(7), opts, drop_remainder=True)
    assert sum(len(y) for _, y in dropped) == 6


def test_every_dataset_runs_without_the_autotune_thread(seven_images):
    """Deleting an iterator waits for tf.data's autotune thread (TF 2.20, 2.21); Keras deletes one every epoch."""
    opts = PipelineOptions(image_size=(16, 16), batch_size=3, cache="none", mixup=0.2)
    datasets = [make_train_dataset(seven_images, np.arange(7), opts, num_classes=7),
                make_eval_dataset(seven_images, np.arange(7), opts, multiple=2, weights=True),
                make_predict_dataset(seven_images, opts)]
    for ds in datasets:
        for options in (ds.options(), ds.map(lambda *parts: parts).options()):  # kept by what wraps it
            assert options.autotune.enabled is False
            assert options.autotune.initial_parallelism == usable_cores()
    assert sum(len(y) for _, y in datasets[0]) == 7


def test_usable_cores_follow_the_affinity(monkeypatch):
    monkeypatch.setattr(images.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cores() == 1


def test_mixup_gives_one_hot_soft_labels(seven_images):
    opts = PipelineOptions(image_size=(16, 16), batch_size=4, augment="none", mixup=0.4, cache="none")
    x, y = next(iter(make_train_dataset(seven_images, np.arange(7), opts, num_classes=7)))
    assert y.shape == (4, 7)
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="num_classes"):
        make_train_dataset(seven_images, np.arange(7), opts)


def test_shrinking_filters_fine_detail_instead_of_aliasing():
    """One-pixel stripes shrunk should tend to grey (what antialias=True gives), not new stripes."""
    stripes = np.zeros([64, 64, 3], np.float32)
    stripes[:, ::2] = 255
    np.testing.assert_allclose(resize(tf.constant(stripes), (16, 16), "stretch").numpy(), 127.5, atol=1)
    ours = resize(tf.constant(stripes), (20, 20), "stretch").numpy()  # a 3.2x shrink
    plain = tf.image.resize(stripes, [20, 20]).numpy()  # plain bilinear: strong aliasing
    assert plain.std() > 60 and ours.std() < plain.std() / 2.5  # box + bilinear: most of it gone


def test_decode_inputs_leave_out_what_no_image_needs(tmp_path):
    from src.pipeline.images import decode_inputs

    small = frame_for([write_image(tmp_path / "a.png")])
    assert set(decode_inputs(small, PipelineOptions(image_size=(16, 16)))) == set()
    turned = frame_for([write_image(tmp_path / "b.jpg", size=(300, 200), orientation=6)])
    assert set(decode_inputs(turned, PipelineOptions(image_size=(16, 16)))) == {"orientation", "scale"}
