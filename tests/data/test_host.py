"""The NumPy host pipeline (covidct.data.host, issue 35): the batches of the tf.data pipeline
without TensorFlow, for the JAX and PyTorch backends.

Runs under any backend; the comparisons with ``tf.data`` and ``tf.image`` run only when Keras is
on TensorFlow (``make test`` runs this file under JAX too: tests/test_backends.py).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile

from covidct.batch.slices import SliceReadError
from covidct.data import (
    AugmentConfig,
    IntensityTransform,
    SliceDataset,
    area_resize,
    make_dataset,
    numpy_affine_warp,
    numpy_random_affine,
    resize_bilinear,
)
from covidct.data.augment import affine_warp

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"
needs_tensorflow = pytest.mark.skipif(not ON_TENSORFLOW, reason="compares with tf.data/tf.image")


def write_slices(root: Path, count: int, size: int = 40, seed: int = 0) -> list[Path]:
    """``count`` uint16 CT-like slices (stored values 0..3000) under ``root``."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = root / f"s{index:03d}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, rng.integers(0, 3000, (size, size), dtype=np.uint16))
        paths.append(path)
    return paths


@needs_tensorflow
@pytest.mark.parametrize(("size_in", "size_out"), [(40, 32), (512, 64), (30, 64), (37, 37)])
def test_area_resize_is_tensorflows_area_resize(size_in: int, size_out: int) -> None:
    import tensorflow as tf

    image = np.random.default_rng(size_in).random((size_in, size_in, 1), dtype=np.float32)
    want = tf.image.resize(image, (size_out, size_out), method="area").numpy()
    np.testing.assert_allclose(area_resize(image, size_out), want, atol=2e-6)


@needs_tensorflow
@pytest.mark.parametrize(("size_in", "size_out"), [((2, 2), (64, 64)), ((7, 5), (32, 40))])
def test_resize_bilinear_is_tensorflows_bilinear(size_in, size_out) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    maps = np.random.default_rng(1).random((3, *size_in), dtype=np.float32)
    want = tf.image.resize(maps[..., None], size_out, method="bilinear").numpy()[..., 0]
    np.testing.assert_allclose(resize_bilinear(maps, size_out), want, atol=2e-6)


def test_numpy_warp_is_the_keras_ops_warp() -> None:
    """The host twin and the device layer's warp agree (any backend's keras.ops)."""
    rng = np.random.default_rng(3)
    images = rng.random((4, 24, 20, 1), dtype=np.float32) * 5.0
    matrices, shifts = numpy_random_affine(rng, 4, 24, 20, AugmentConfig())
    device = keras.ops.convert_to_numpy(affine_warp(images, matrices, shifts))
    host = numpy_affine_warp(images, matrices, shifts)
    np.testing.assert_allclose(host, device, atol=1e-5)
    low, high = images.min(axis=(1, 2, 3)), images.max(axis=(1, 2, 3))
    assert (host.min(axis=(1, 2, 3)) >= low - 1e-6).all()
    assert (host.max(axis=(1, 2, 3)) <= high + 1e-6).all()


def test_identity_parameters_leave_the_image() -> None:
    images = np.random.default_rng(4).random((2, 16, 16, 1), dtype=np.float32)
    still = AugmentConfig(False, False, 0.0, 0.0, 0.0, 0.0)
    matrices, shifts = numpy_random_affine(np.random.default_rng(0), 2, 16, 16, still)
    np.testing.assert_allclose(numpy_affine_warp(images, matrices, shifts), images, atol=1e-6)


@needs_tensorflow
@pytest.mark.parametrize("image_size", [None, 32])
def test_numpy_batches_equal_tf_data_batches(tmp_path: Path, image_size: int | None) -> None:
    paths = write_slices(tmp_path, 7)
    labels = [0, 1, 1, 0, 1, 0, 1]
    kwargs = dict(image_size=image_size, batch_size=3, transform=IntensityTransform())
    host = list(make_dataset(paths, labels, pipeline="numpy", **kwargs))
    graph = [(x.numpy(), y.numpy()) for x, y in make_dataset(paths, labels, **kwargs)]
    assert len(host) == len(graph) == 3
    for (hx, hy), (gx, gy) in zip(host, graph, strict=True):
        assert hx.dtype == np.float32 and hx.shape == gx.shape
        np.testing.assert_allclose(hx, gx, atol=2e-6)
        np.testing.assert_array_equal(hy, gy)


def test_shuffled_repeated_stream_visits_every_slice_once_per_pass(tmp_path: Path) -> None:
    paths = write_slices(tmp_path, 10, size=8)
    dataset = make_dataset(
        paths, [0, 1] * 5, image_size=None, batch_size=5, shuffle=True, repeat=True,
        seed=3, pipeline="numpy",
    )  # fmt: skip
    assert dataset.num_batches is None
    seen = [dataset[i][0].reshape(5, -1) for i in range(4)]  # two passes
    keys = [row.tobytes() for batch in seen for row in batch]
    assert len(set(keys[:10])) == 10 and set(keys[:10]) == set(keys[10:])
    assert keys[:10] != keys[10:]  # reshuffled for the second pass
    again = make_dataset(
        paths, [0, 1] * 5, image_size=None, batch_size=5, shuffle=True, repeat=True,
        seed=3, pipeline="numpy",
    )  # fmt: skip
    np.testing.assert_array_equal(again[3][0], dataset[3][0])  # a pure function of the index


def test_balanced_batches_are_half_covid_on_average(tmp_path: Path) -> None:
    paths = write_slices(tmp_path, 20, size=8)
    labels = [1] * 3 + [0] * 17
    dataset = SliceDataset(
        paths, labels, image_size=None, batch_size=20, shuffle=True, repeat=True,
        balance_classes=True, seed=1,
    )  # fmt: skip
    covid = np.concatenate([dataset[i][1][:, 1] for i in range(10)])
    assert 0.4 < covid.mean() < 0.6  # 3 of 20 slices are COVID; drawn half the time
    plain = SliceDataset(paths, labels, image_size=None, batch_size=20, shuffle=True, repeat=True)
    assert np.concatenate([plain[i][1][:, 1] for i in range(10)]).mean() == pytest.approx(0.15)


def test_augmented_batches_stay_in_range_and_differ(tmp_path: Path) -> None:
    paths = write_slices(tmp_path, 4, size=32)
    plain = make_dataset(paths, [0, 1, 0, 1], image_size=32, batch_size=4, pipeline="numpy")[0][0]
    augmented = make_dataset(
        paths, [0, 1, 0, 1], image_size=32, batch_size=4, augment=AugmentConfig(),
        pipeline="numpy",
    )[0][0]  # fmt: skip
    assert augmented.shape == plain.shape and not np.allclose(augmented, plain)
    assert (augmented.min(axis=(1, 2, 3)) >= plain.min(axis=(1, 2, 3)) - 1e-6).all()
    assert (augmented.max(axis=(1, 2, 3)) <= plain.max(axis=(1, 2, 3)) + 1e-6).all()


def test_drop_remainder_file_cache_and_errors(tmp_path: Path) -> None:
    paths = write_slices(tmp_path / "images", 5, size=8)
    cache = tmp_path / "cache" / "slices.npy"
    dataset = make_dataset(
        paths, [0] * 5, image_size=None, batch_size=2, drop_remainder=True, cache=cache,
        pipeline="numpy",
    )  # fmt: skip
    assert len(dataset) == 2 and len(make_dataset(paths, [0] * 5, image_size=None,
                                                 batch_size=2, pipeline="numpy")) == 3  # fmt: skip
    first = [x for x, _ in make_dataset(paths, [0] * 5, image_size=None, batch_size=5,
                                        cache=cache, pipeline="numpy")]  # fmt: skip
    assert cache.is_file()
    for path in paths:
        path.unlink()  # read from the file cache from now on
    cached = [x for x, _ in make_dataset(paths, [0] * 5, image_size=None, batch_size=5,
                                         cache=cache, pipeline="numpy")]  # fmt: skip
    np.testing.assert_array_equal(cached[0], first[0])
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        make_dataset(paths[:2], [0], image_size=None, batch_size=1, pipeline="numpy")
    with pytest.raises(ValueError, match="balance_classes needs"):
        make_dataset(paths, [0] * 5, image_size=None, batch_size=1, balance_classes=True,
                     pipeline="numpy")  # fmt: skip
    with pytest.raises(ValueError, match="pipeline 'dask'"):
        make_dataset(paths, [0] * 5, image_size=None, batch_size=1, pipeline="dask")


def test_an_unreadable_slice_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    dataset = make_dataset([bad], [1], image_size=8, batch_size=1, pipeline="numpy")
    with pytest.raises(SliceReadError, match="broken.tif"):
        dataset[0]


def test_keras_fits_and_predicts_from_the_pydataset(tmp_path: Path) -> None:
    """Keras's own reader (worker threads, queue) takes the dataset under this backend."""
    paths = write_slices(tmp_path, 8, size=16)
    train = make_dataset(
        paths, [0, 1] * 4, image_size=16, batch_size=4, shuffle=True, repeat=True,
        augment=AugmentConfig(), pipeline="numpy",
    )  # fmt: skip
    inputs = keras.Input((16, 16, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(train, epochs=2, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 2
    scores = model.predict(
        make_dataset(paths, [0] * 8, image_size=16, batch_size=3, pipeline="numpy"), verbose=0
    )
    assert scores.shape == (8, 2) and np.isfinite(scores).all()
