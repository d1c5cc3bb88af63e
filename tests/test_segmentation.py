"""The segmentation kind's foundations (src.kinds.segmentation) on tiny generated masks and images."""
from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.core.errors import KitError
from src.core.submit_settings import DIHEDRAL_VIEWS
from src.kinds.segmentation import rle, tiles
from src.kinds.segmentation.masks import read_masks
from src.kinds.segmentation.metrics import BceDice, DiceMetric, dice, iou, mean_score, pair_scores
from src.kinds.segmentation.postprocess import ClassRule, choose_postprocess
from src.kinds.segmentation.unet import TAPS, build_encoder, build_unet, check_input_shape, size_multiple


def random_masks(count: int, shape, seed: int = 0) -> list:
    """Return `count` random blobby 0/1 masks of `shape` (the first empty, the second full)."""
    rng = np.random.default_rng(seed)
    masks = [np.zeros(shape, np.uint8), np.ones(shape, np.uint8)]
    while len(masks) < count:
        masks.append((rng.random(shape) < rng.uniform(0.1, 0.6)).astype(np.uint8))
    return masks[:count]


# --- run-length strings ---

def test_decode_by_hand_in_both_orders():
    """"3 2 9 1" on 4x3: column-major runs down the columns, row-major along the rows."""
    assert rle.decode("3 2 9 1", (4, 3)).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert rle.decode("3 2 9 1", (4, 3), "row").tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("order", ["column", "row"])
def test_round_trip_in_both_orders(order):
    for mask in random_masks(6, (7, 5)):
        text = rle.encode(mask, order)
        assert np.array_equal(rle.decode(text, mask.shape, order), mask)
    assert rle.encode(np.ones((2, 3)), order) == "1 6"


@pytest.mark.parametrize("empty", ["", "  ", "-1", None, float("nan")])
def test_empty_cells_are_empty_masks(empty):
    assert rle.decode(empty, (3, 4)).sum() == 0 and rle.decode(empty, (3, 4)).shape == (3, 4)
    assert rle.encode(np.zeros((3, 4), np.uint8)) == ""


@pytest.mark.parametrize("text, expected", [
    ("1 2 3", "3 numbers in the run-length string: expected pairs"),
    ("1 2 x 1", "run-length token 'x' is not a whole number"),
    ("1 2.5", "run-length token '2.5' is not a whole number"),
    ("0 2", r'run 1 is "0 2": expected a start of at least 1 \(starts are 1-indexed\)'),
    ("4 0", r'run 1 is "4 0": expected a start of at least 1 .* and a length of at least 1'),
    ("11 3", r'run 1 \("11 3"\) ends at pixel 13, past the image\'s 12 pixels'),
    ("5 2 6 1", r"run 2 starts at pixel 6, not after run 1 \(pixels 5-6\): expected runs in increasing order"),
    ("8 1 2 1", r"run 2 starts at pixel 2, not after run 1 \(pixels 8-8\)"),
])
def test_bad_strings_name_where_and_what(text, expected):
    with pytest.raises(KitError, match=r"^train.csv: row 7 \(id 'a'\): " + expected):
        rle.decode(text, (4, 3), where="train.csv: row 7 (id 'a')")


def test_an_unknown_order_is_refused():
    with pytest.raises(KitError, match="order 'fortran': expected column .* or row"):
        rle.encode(np.ones((2, 2)), "fortran")


# --- labels CSVs and mask files ---

def write_png(path, size, value=(90, 120, 200)):
    """Write an RGB image of size (height, width); return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("order", ["column", "row"])
def test_one_row_per_image_round_trip(tmp_path, order):
    masks = {f"img{i}": m for i, m in enumerate(random_masks(4, (6, 9), seed=1))}
    for image_id in masks:
        write_png(tmp_path / "train" / f"{image_id}.png", (6, 9))
    rows = [(image_id, rle.encode(mask, order)) for image_id, mask in masks.items()]
    pd.DataFrame(rows, columns=["id", "rle"]).to_csv(tmp_path / "train.csv", index=False)
    table = read_masks(tmp_path / "train.csv", tmp_path / "train", order=order)
    assert table.layout == "image" and table.ids == list(masks) and table.classes == ["mask"]
    for image_id, mask in masks.items():
        assert np.array_equal(table.mask(image_id), mask[..., None])
    assert table.describe() == f"train.csv: one row per image (id, rle): 4 images, 1 class (mask), {order}-major runs"


@pytest.mark.parametrize("order", ["column", "row"])
def test_one_row_per_image_and_class_round_trip(tmp_path, order):
    """UW-Madison's layout: every (id, class) row, empty cells for absent classes; sizes from `size`."""
    classes = ["large_bowel", "small_bowel", "stomach"]
    masks = {f"case1_day2_slice_{i:04d}": np.stack(random_masks(3, (8, 6), seed=i), -1)[..., ::-1] for i in range(3)}
    rows = [(image_id, name, rle.encode(mask[..., c], order))
            for image_id, mask in masks.items() for c, name in enumerate(classes)]
    pd.DataFrame(rows, columns=["id", "class", "segmentation"]).to_csv(tmp_path / "train.csv", index=False)
    table = read_masks(tmp_path / "train.csv", size=(8, 6), order=order)
    assert table.layout == "image_class" and table.classes == classes and table.ids == list(masks)
    for image_id, mask in masks.items():
        assert np.array_equal(table.mask(image_id), mask)
    auto = read_masks(tmp_path / "train.csv", size=lambda image_id: (8, 6))
    assert auto.order == "row" and "row-major runs (UW-Madison's layout)" in auto.describe()


def test_severstal_lists_only_masks_and_the_other_images_are_empty(tmp_path):
    """ImageId,ClassId,EncodedPixels with only the pairs that have a mask: unlisted images are empty."""
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_png(tmp_path / "train_images" / name, (4, 8))
    first, second = np.zeros((4, 8), np.uint8), np.zeros((4, 8), np.uint8)
    first[1:3, 2:5], second[0, :] = 1, 1
    frame = pd.DataFrame({"ImageId": ["a.jpg", "b.jpg"], "ClassId": [3, 1],
                          "EncodedPixels": [rle.encode(first), rle.encode(second)]})
    frame.to_csv(tmp_path / "train.csv", index=False)
    table = read_masks(tmp_path / "train.csv", tmp_path / "train_images")
    assert table.classes == ["1", "3"] and table.ids == ["a.jpg", "b.jpg", "c.jpg"]
    assert np.array_equal(table.mask("a.jpg")[..., 1], first) and table.mask("a.jpg")[..., 0].sum() == 0
    assert np.array_equal(table.mask("b.jpg")[..., 0], second) and table.mask("c.jpg").shape == (4, 8, 2)
    assert table.mask("c.jpg").sum() == 0
    assert table.describe() == ("train.csv: one row per image and class (ImageId, ClassId, EncodedPixels): 3 images, "
                                "2 classes (1, 3), column-major runs, 1 image without rows taken as empty masks")
    frame["ImageId_ClassId"] = frame.ImageId + "_" + frame.ClassId.astype(str)  # Severstal's first release
    frame[["ImageId_ClassId", "EncodedPixels"]].to_csv(tmp_path / "old.csv", index=False)
    old = read_masks(tmp_path / "old.csv", tmp_path / "train_images")
    assert old.classes == ["1", "3"] and np.array_equal(old.mask("a.jpg"), table.mask("a.jpg"))


def test_hubmap_sizes_from_columns_and_airbus_rows_merged(tmp_path):
    mask = np.zeros((5, 7), np.uint8)
    mask[1:4, 2:6] = 1
    pd.DataFrame({"id": ["10044", "2"], "organ": ["kidney", "lung"], "img_height": ["5", "3"],
                  "img_width": ["7", "3"], "rle": [rle.encode(mask), ""]}).to_csv(tmp_path / "hub.csv", index=False)
    table = read_masks(tmp_path / "hub.csv")
    assert np.array_equal(table.mask("10044")[..., 0], mask) and table.mask("2").shape == (3, 3, 1)
    assert "(id, rle, img_height, img_width)" in table.describe()
    ship, other = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    ship[0, 0], other[3, 1:3] = 1, 1
    pd.DataFrame({"ImageId": ["s.jpg", "s.jpg", "t.jpg"], "EncodedPixels": [rle.encode(ship), rle.encode(other), ""]}
                 ).to_csv(tmp_path / "ships.csv", index=False)
    ships = read_masks(tmp_path / "ships.csv", size=(4, 4))
    assert ships.ids == ["s.jpg", "t.jpg"] and np.array_equal(ships.mask("s.jpg")[..., 0], ship | other)


def test_bad_cells_name_the_file_and_row(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", (4, 3))
    pd.DataFrame({"id": ["a", "b"], "rle": ["1 2", "1 2 3"]}).to_csv(tmp_path / "t.csv", index=False)
    table = read_masks(tmp_path / "t.csv", tmp_path / "imgs", size=None)
    with pytest.raises(KitError, match=r"t.csv: row 3 \(id 'b'\): no mask size: expected img_height and img_width"):
        table.mask("b")
    table.size = (4, 3)
    with pytest.raises(KitError, match=r"t.csv: row 3 \(id 'b'\): 3 numbers in the run-length string"):
        table.mask("b")
    with pytest.raises(KitError, match=r"t.csv: no image 'c' among its 2 images"):
        table.mask("c")
    pd.DataFrame({"id": ["a"], "height": ["5"], "width": ["3"], "rle": ["1 2"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(KitError, match=r"s.csv: row 2 \(id 'a'\) gives the mask size 5x3 .* but .*a.png is 4x3"):
        read_masks(tmp_path / "s.csv", tmp_path / "imgs").mask("a")
    pd.DataFrame({"id": ["a"], "height": ["x"], "width": ["3"], "rle": ["1 2"]}).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(KitError, match=r"h.csv: row 2 \(id 'a'\), column height: 'x': expected the image's side"):
        read_masks(tmp_path / "h.csv")
    pd.DataFrame({"id": ["a"], "label": ["x"]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(KitError, match=r"n.csv: no run-length column among id, label: expected one of rle"):
        read_masks(tmp_path / "n.csv")


def test_mask_files_beside_the_images(tmp_path):
    """Carvana's train_masks/NAME_mask.gif (a 0/1 palette) and a 0/255 PNG of the same stem; a wrong size."""
    car = np.zeros((6, 10), np.uint8)
    car[2:5, 3:8] = 1
    write_png(tmp_path / "train" / "car_01.jpg", (6, 10))
    write_png(tmp_path / "train" / "car_02.jpg", (6, 10))
    gif = Image.fromarray(car, "P")
    gif.putpalette([0, 0, 0, 255, 255, 255])
    (tmp_path / "train_masks").mkdir()
    gif.save(tmp_path / "train_masks" / "car_01_mask.gif")
    Image.fromarray(car[::-1] * 255).save(tmp_path / "train_masks" / "car_02.png")
    table = read_masks(tmp_path / "train_masks", tmp_path / "train")
    assert table.layout == "files" and table.ids == ["car_01.jpg", "car_02.jpg"]
    assert np.array_equal(table.mask("car_01.jpg")[..., 0], car)
    assert np.array_equal(table.mask("car_02.jpg")[..., 0], car[::-1])
    assert table.describe() == "train_masks: mask files beside the images: 2 images, 1 class (mask)"
    Image.fromarray(car[:5] * 255).save(tmp_path / "train_masks" / "car_02.png")
    with pytest.raises(KitError, match=r"car_02.png: the mask is 5x10 \(height x width\), but its image .*car_02.jpg "
                                       "is 6x10"):
        table.mask("car_02.jpg")
    write_png(tmp_path / "train" / "car_03.jpg", (6, 10))
    with pytest.raises(KitError, match="no mask for image car_03.jpg: expected car_03_mask.png or .gif"):
        read_masks(tmp_path / "train_masks", tmp_path / "train")


# --- scores ---

def test_dice_and_iou_by_hand():
    truth, answer, empty = np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4))
    truth[0, :4], answer[0, :2] = 1, 1
    assert dice(truth, answer) == pytest.approx(2 * 2 / 6) and iou(truth, answer) == pytest.approx(0.5)
    assert dice(empty, empty) == 1 and iou(empty, empty) == 1
    assert dice(empty, answer) == 0 and iou(empty, answer) == 0 and dice(truth, empty) == 0
    truths = [np.stack([truth, empty], -1), np.stack([empty, empty], -1)]
    answers = [np.stack([answer, answer], -1), np.stack([empty, empty], -1)]
    assert pair_scores(truths, answers).ravel().tolist() == pytest.approx([2 / 3, 0, 1, 1])
    assert mean_score(truths, answers) == pytest.approx((2 / 3 + 0 + 1 + 1) / 4)  # over (image, class) pairs
    assert mean_score(truths, answers, per_class=False) == pytest.approx((2 * 2 / 8 + 1) / 2)  # over images
    assert mean_score(truths, answers, per_class=False, score="iou") == pytest.approx((2 / 6 + 1) / 2)


def test_the_keras_dice_metric_matches_numpy_and_the_loss_is_finite():
    rng = np.random.default_rng(3)
    truth = (rng.random((3, 8, 8, 2)) < 0.3).astype("float32")
    truth[0, ..., 1] = 0  # an empty pair answered empty below: scores 1
    probs = np.clip(truth * 0.6 + rng.random(truth.shape) * 0.5, 0, 1).astype("float32")
    probs[0, ..., 1] = 0.1
    metric = DiceMetric()
    metric.update_state(truth[:2], probs[:2])
    metric.update_state(truth[2:], probs[2:])
    assert float(metric.result()) == pytest.approx(mean_score(list(truth), list(probs > 0.5)), abs=1e-5)
    assert DiceMetric.from_config(metric.get_config()).threshold == 0.5
    loss = BceDice()
    value = float(loss(truth, probs))
    assert math.isfinite(value) and value > float(loss(truth, truth * 0.98 + 0.01))
    assert BceDice.from_config(loss.get_config()).dice_weight == 1.0


# --- views, sizes, tiles ---

def test_every_view_undone_gives_back_the_plain_prediction():
    image = np.random.default_rng(4).random((2, 6, 10, 3)).astype("float32")

    def predict(batch):  # per pixel, so a view's answer undone must be the plain answer exactly
        return np.stack([batch[..., 0] * batch[..., 1], batch.mean(-1)], -1)

    assert tuple(tiles.VIEWS) == DIHEDRAL_VIEWS
    for name in DIHEDRAL_VIEWS:
        assert np.array_equal(tiles.undo_view(tiles.make_view(image, name), name), image), name
        assert np.allclose(tiles.predict_views(predict, image, (name,)), predict(image)), name
    assert tiles.make_view(image, "rot90").shape == (2, 10, 6, 3)
    assert np.allclose(tiles.predict_views(predict, image, DIHEDRAL_VIEWS), predict(image))
    with pytest.raises(KitError, match="view 'center_crop_80': expected one of identity, hflip"):
        tiles.make_view(image, "center_crop_80")


def test_resize_back_to_the_original_size():
    mask = np.kron(random_masks(3, (4, 6), seed=5)[2], np.ones((3, 3), np.uint8))[..., None]  # 12x18, 3x3 blocks
    small = tiles.resize(mask, (4, 6), "nearest")
    assert small.dtype == np.uint8 and np.array_equal(tiles.resize(small, (12, 18), "nearest"), mask)
    probs = np.random.default_rng(6).random((5, 7, 2)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.ops.image.resize(probs, (15, 21), "bilinear"))
    assert np.allclose(tiles.resize(probs, (15, 21)), expected, atol=1e-5)  # half-pixel centres, as Keras
    assert np.array_equal(tiles.resize(probs, (5, 7)), probs)


def test_tile_stitching_equals_the_whole_image_prediction():
    """Two 3x3 convolutions reach 2 pixels: with overlap 8 (a zero margin of 8 // 4) tiles equal the whole."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")])
    image = np.random.default_rng(7).random((50, 70, 3)).astype("float32")

    def predict(batch):
        return keras.ops.convert_to_numpy(model(batch))

    whole = predict(image[None])[0]
    stitched = tiles.predict_tiled(predict, image, tile=24, overlap=8, batch_size=5)
    assert stitched.shape == (50, 70, 2) and np.allclose(stitched, whole, atol=1e-5)
    assert tiles.tile_starts(50, 24, 8) == [0, 16, 26] and tiles.tile_starts(20, 24, 8) == [0]
    small = tiles.predict_tiled(lambda batch: batch[..., :1], image[:10, :13], tile=16, overlap=4)
    assert np.array_equal(small, image[:10, :13, :1])  # smaller than a tile: padded, cropped back
    padded, size = tiles.pad_to_multiple(image, 32)
    assert padded.shape == (64, 96, 3) and size == (50, 70)


# --- postprocessing ---

def test_the_chosen_rules_improve_the_dice_on_noisy_probabilities():
    rng = np.random.default_rng(8)
    truths, probs = [], []
    for index in range(16):
        truth = np.zeros((32, 32, 1), np.uint8)
        if index % 2:
            top, left = rng.integers(2, 18, 2)
            truth[top:top + 12, left:left + 12] = 1
        prob = 0.25 + 0.45 * truth + rng.normal(0, 0.12, truth.shape)
        speckles = rng.random(truth.shape) < 0.01  # single pixels as sure as the objects: no threshold drops them
        prob[speckles] = rng.uniform(0.7, 1.0, speckles.sum())
        truths.append(truth)
        probs.append(np.clip(prob, 0, 1).astype("float32"))
    chosen = choose_postprocess(probs, truths, classes=["mask"])
    rule = chosen.rules[0]
    assert chosen.after > chosen.before + 0.2 and rule.min_size > 1
    assert chosen.after == pytest.approx(mean_score(truths, [chosen.apply(p) for p in probs]))
    assert chosen.describe().startswith(f"mean Dice {chosen.before:.4f} -> {chosen.after:.4f} out of fold: mask "
                                        f"threshold {rule.threshold:.2f}, min size {rule.min_size} px")
    sure = np.full((4, 4), 0.9, "float32")
    assert ClassRule(0.5, 0, 0.95).apply(sure).sum() == 0 and ClassRule(0.5, 0, 0.85).apply(sure).sum() == 16


# --- the U-Net ---

def test_unet_on_small_resnet_trains_a_step_and_is_fully_convolutional():
    keras.utils.set_random_seed(1)
    assert build_unet("small_resnet", classes=2, input_shape=(32, 32, 3)).output_shape == (None, 32, 32, 2)
    model = build_unet("small_resnet", classes=2)  # (None, None, 3)
    model.compile(optimizer="adam", loss=BceDice(), metrics=[DiceMetric()])
    images = np.random.default_rng(9).random((2, 32, 32, 3)).astype("float32") * 255
    masks = (np.random.default_rng(10).random((2, 32, 32, 2)) < 0.3).astype("float32")
    logs = model.train_on_batch(images, masks, return_dict=True)
    assert math.isfinite(logs["loss"]) and 0 <= logs["dice"] <= 1
    assert model.predict(images[:1, :24, :20], verbose=0).shape == (1, 24, 20, 2)  # another size, same weights


def test_unet_on_a_keras_application_taps_strides_2_to_32():
    encoder = build_encoder("mobilenetv3_small", (64, 64, 3))
    assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(64 // s, 64 // s) for _, s in TAPS["mobilenetv3_small"]]
    model = build_unet("mobilenetv3_small", classes=3, input_shape=(64, 64, 3), exclusive=True)
    answer = model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    assert answer.shape == (1, 64, 64, 3) and np.allclose(answer.sum(-1), 1, atol=1e-5)  # softmax over classes


def test_unet_refuses_a_backbone_without_taps_and_a_bad_size():
    with pytest.raises(KitError, match="--backbone xception: no U-Net feature taps are declared .* small_resnet"):
        build_unet("xception")
    assert size_multiple("resnet50") == 32 and size_multiple("small_resnet") == 4
    with pytest.raises(KitError, match="U-Net input 48x64: on resnet50 each side must be a multiple of 32"):
        check_input_shape((48, 64, 3), "resnet50")
