import math

import numpy as np
import pytest
import tensorflow as tf

from src.pipeline.augment import affine_transform, cutmix_mask, make_augmenter, mix_batch, warp_native, warp_xla


def picture(size=32) -> tf.Tensor:
    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(0, 255, [8, 8, 3]).astype(np.float32), [size, size])
    return tf.constant(smooth)


@pytest.mark.parametrize("policy", ["none", "light", "strong"])
@pytest.mark.parametrize("backend", ["native", "xla"])
def test_policies_keep_shape_and_range(policy, backend):
    augment = make_augmenter(policy, backend)
    for _ in range(5):
        out = augment(picture()).numpy()
        assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 255
    if policy == "none":
        np.testing.assert_array_equal(out, picture().numpy())


@pytest.mark.parametrize("policy", ["light", "strong"])
def test_xla_backend_compiles_as_a_tpu_needs(policy):
    """TPUs run only XLA-compiled graphs; jit_compile=True on CPU uses the same compiler."""
    augment = make_augmenter(policy, "xla")
    compiled = tf.function(lambda x: tf.map_fn(augment, x), jit_compile=True)
    out = compiled(tf.stack([picture(), picture()]))
    assert out.shape == (2, 32, 32, 3)


def test_native_warp_has_no_xla_kernel_which_is_why_the_xla_backend_exists():
    compiled = tf.function(lambda x: make_augmenter("light", "native")(x), jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        compiled(picture())


def test_both_warps_agree():
    image = picture()
    transform = affine_transform(tf.shape(image), 1.1, 12 * math.pi / 180, tf.constant([0.05, -0.03]))
    native, xla = warp_native(image, transform).numpy(), warp_xla(image, transform).numpy()
    assert np.abs(native - xla)[4:-4, 4:-4].max() < 1e-2


def test_rotation_by_90_degrees_is_exact():
    image = picture(16)
    turned = warp_xla(image, affine_transform(tf.shape(image), 1.0, math.pi / 2, tf.zeros([2]))).numpy()
    np.testing.assert_allclose(turned, np.rot90(image.numpy(), k=-1), atol=1e-3)


def test_cutmix_mask_share_matches_lambda():
    mask, kept = cutmix_mask(tf.constant([4, 40, 40, 3]), tf.constant(0.75))
    assert mask.shape == (1, 40, 40, 1)
    assert abs(float(tf.reduce_mean(mask)) - float(kept)) < 1e-6
    images = tf.stack([tf.zeros([40, 40, 3]), tf.ones([40, 40, 3])])
    labels = tf.one_hot([0, 1], 2)
    mixed, soft = mix_batch(images, labels, cutmix=1.0)
    # image 0 took image 1's pixels where the box is; its label says how much of it.
    np.testing.assert_allclose(float(tf.reduce_mean(mixed[0])), float(soft[0, 1]), atol=1e-5)


def test_no_flip_never_mirrors():
    """A mirror reverses a left-to-right ramp; without flips no policy may do that."""
    ramp = np.arange(8, dtype=np.float32) * 30
    image = tf.constant(np.tile(ramp[None, :, None], (8, 1, 3)))

    def direction(out):
        return np.corrcoef(out[2:6, 1:7, 0].mean(axis=0), ramp[1:7])[0, 1]

    # light's colour changes keep the order of intensities, so the ramp's direction shows a mirror
    # one augmenter each, called many times as tf.data calls it (each make_augmenter compiles anew with XLA)
    unflipped, flipped = make_augmenter("light", flip=False), make_augmenter("light", flip=True)
    assert all(direction(unflipped(image).numpy()) > 0 for _ in range(20))
    assert any(direction(flipped(image).numpy()) < 0 for _ in range(30))
    # strong may solarize (reversing intensities), so look for the flip op itself in its graph
    from src.pipeline.augment import strong

    def reverses(flip):
        graph_def = tf.function(lambda x: strong(x, warp_native, flip=flip)).get_concrete_function(
            tf.TensorSpec([8, 8, 3], tf.float32)).graph.as_graph_def()
        nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
        return any(node.op == "ReverseV2" for node in nodes)  # conditionals keep ops in the library

    assert reverses(True) and not reverses(False)


def test_an_albumentations_compose_saved_by_the_user_is_the_policy(tmp_path):
    """--augment albumentations:FILE: A.load reads the user's Compose (JSON or YAML), applied per image in tf.data."""
    import albumentations as A

    from src.core.config import PipelineOptions
    from src.data.imagefiles import scan_images
    from src.pipeline.images import make_train_dataset
    from tests.conftest import write_image

    A.save(A.Compose([A.HorizontalFlip(p=1.0)]), str(tmp_path / "flip.json"))
    A.save(A.Compose([A.RandomCrop(16, 16, p=1.0), A.ToGray(p=1.0)]), str(tmp_path / "crop.yaml"), data_format="yaml")
    image = picture()
    flipped = make_augmenter(f"albumentations:{tmp_path / 'flip.json'}")(image).numpy()
    np.testing.assert_allclose(flipped, np.rint(image.numpy())[:, ::-1], atol=0.5)
    cropped = make_augmenter(f"albumentations:{tmp_path / 'crop.yaml'}")(image).numpy()
    assert cropped.shape == (32, 32, 3)  # resized back: batches keep one shape
    assert np.allclose(cropped[..., 0], cropped[..., 1], atol=1)  # ToGray ran
    paths = [write_image(tmp_path / f"i{i}.png", size=(20, 20)) for i in range(4)]
    frame = scan_images(paths)
    opts = PipelineOptions(image_size=(24, 24), batch_size=2, cache="none", augment=f"albumentations:{tmp_path / 'flip.json'}")
    batches = list(make_train_dataset(frame, np.zeros(4, np.int32), opts))
    assert [tuple(x.shape) for x, _ in batches] == [(2, 24, 24, 3), (2, 24, 24, 3)]


def test_a_file_that_is_not_a_compose_is_named(tmp_path):
    from src.core.errors import KitError

    (tmp_path / "aug.json").write_text('{"hello": 1}')
    with pytest.raises(KitError, match="aug.json is not a Compose saved by albumentations' A.save"):
        make_augmenter(f"albumentations:{tmp_path / 'aug.json'}")
