"""Tests for covidct.models: registry, parameter counts, weights, train-save-reload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from covidct.lake.storage import IntegrityError
from covidct.models import (
    BACKBONES,
    ChannelAdaptation,
    WeightsCache,
    build_model,
    fetch_weights_file,
    get_backbone,
    list_models,
    run_models_command,
)

# Backbones whose build + two eager steps + save/reload take well under 10 s here.
FAST = {"vgg16", "resnet50", "resnet50v2_fpn"}


def small_shape(name: str) -> tuple[int, int, int]:
    size = max(BACKBONES[name].min_size, 32)
    return (size, size, 1)


def write_keras_applications_file(path: Path, model: keras.Model) -> None:
    """Write ``model``'s weights in the legacy HDF5 layout of the Keras Applications files."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def test_registry_names() -> None:
    assert list(BACKBONES) == [
        "inceptionv3",
        "vgg16",
        "vgg19",
        "resnet50",
        "xception",
        "resnet152",
        "resnet152_lstm",
        "resnet50v2_fpn",
    ]


@pytest.mark.parametrize("bad", ["resnet", "ResNet152", ""])
def test_unknown_backbone_lists_valid_names(bad: str) -> None:
    with pytest.raises(ValueError, match="valid: inceptionv3, vgg16"):
        build_model(bad, (64, 64, 1))


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("inceptionv3", (64, 64, 1), "minimum 75x75"),
        ("resnet50v2_fpn", (75, 75, 1), "minimum 96x96"),
        ("vgg16", (64, 64, 2), "1 or 3"),
    ],
)
def test_rejects_unusable_input_shapes(name: str, shape: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(name, shape)


@pytest.mark.parametrize(
    ("level", "shape"),
    [("P3", (30, 30)), ("P4", (14, 14)), ("P5", (16, 16)), ("P6", (8, 8)), ("P7", (4, 4))],
)
def test_fpn_pyramid_shapes_at_512(level: str, shape: tuple[int, int]) -> None:
    """Shapes implied by the authors' code at 512x512 (stride 16/32 maps, unpadded 3x3)."""
    model = build_model("resnet50v2_fpn", (512, 512, 1))
    assert model.get_layer(level).output.shape[1:] == (*shape, 256)
    assert model.get_layer("pyramid_concat").output.shape[1:] == (10,)


@pytest.mark.parametrize(
    "name",
    # resnet152_lstm: built small, run and reloaded by the training test below (each build of its
    # two LSTM(2048) layers costs about 18 s of orthogonal initialisation on 2 cores)
    [n for n in BACKBONES if n != "resnet152_lstm"],
)
def test_every_backbone_builds_small_and_outputs_probabilities(name: str) -> None:
    shape = small_shape(name)
    model = build_model(name, shape)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 2)
    batch = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype(np.float32)
    probabilities = model(batch, training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in BACKBONES],
)
def test_trains_saves_and_reloads_with_identical_predictions(name: str, tmp_path: Path) -> None:
    shape = small_shape(name)
    model = build_model(name, shape)
    model.compile(
        optimizer=keras.optimizers.Nadam(1e-4), loss="categorical_crossentropy", run_eagerly=True
    )
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (4, *shape)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    before = [weight.copy() for weight in model.get_weights()]
    model.fit(images, targets, batch_size=2, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    model.save(tmp_path / f"{name}.keras")
    restored = keras.saving.load_model(tmp_path / f"{name}.keras")
    probabilities = model(images).numpy()
    np.testing.assert_array_equal(restored(images).numpy(), probabilities)
    assert model.input_shape == (None, *shape) and model.output_shape == (None, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    if name == "resnet152_lstm":  # the seed's wiring (its 512-px sizes: the models command test)
        assert model.get_layer("lstm_1").input.shape[1:] == shape[:2]  # rows of the slice
        assert model.get_layer("avg_pool_2x2").output.shape[1:3] == (1, 1)  # conv5 1x1, padded


# --------------------------------------------------------------------------- weights


@pytest.fixture
def imagenet_cache(tmp_path: Path) -> tuple[Path, keras.Model]:
    """A cache dir holding a stand-in ResNet50 'notop' file (random weights, real layout)."""
    reference = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    write_keras_applications_file(tmp_path / BACKBONES["resnet50"].imagenet_file, reference)
    return tmp_path, reference


def test_imagenet_weights_summed_over_colour(imagenet_cache: tuple[Path, keras.Model]) -> None:
    cache, reference = imagenet_cache
    model = build_model("resnet50", (48, 48, 1), weights="imagenet", weights_cache=cache)
    rgb_kernel, bias = reference.get_layer("conv1_conv").get_weights()
    kernel, loaded_bias = model.get_layer("conv1_conv").get_weights()
    np.testing.assert_allclose(kernel, rgb_kernel.sum(axis=2, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(loaded_bias, bias)
    for name in ("conv3_block2_2_conv", "conv5_block3_3_bn"):
        for got, want in zip(
            model.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)


def test_summed_first_conv_equals_rgb_model_on_grey_input(
    imagenet_cache: tuple[Path, keras.Model],
) -> None:
    """Summing over colour is exact for a grey image (R = G = B)."""
    cache, reference = imagenet_cache
    model = build_model("resnet50", (32, 32, 1), weights="imagenet", weights_cache=cache)
    grey = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    trunk = keras.Model(model.input, model.get_layer("conv5_block3_out").output)
    np.testing.assert_allclose(
        trunk.predict(grey, verbose=0),
        reference.predict(np.repeat(grey, 3, axis=-1), verbose=0),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    ("adaptation", "first_conv_from_file"),
    [(ChannelAdaptation.RANDOM, False), (ChannelAdaptation.REPLICATE, True)],
)
def test_other_channel_adaptations(
    imagenet_cache: tuple[Path, keras.Model], adaptation: ChannelAdaptation, first_conv_from_file
) -> None:
    cache, reference = imagenet_cache
    model = build_model(
        "resnet50",
        (32, 32, 1),
        weights="imagenet",
        weights_cache=cache,
        channel_adaptation=adaptation,
    )
    kernel = model.get_layer("conv1_conv").get_weights()[0]
    rgb_kernel = reference.get_layer("conv1_conv").get_weights()[0]
    same = kernel.shape == rgb_kernel.shape and np.array_equal(kernel, rgb_kernel)
    assert same is first_conv_from_file
    np.testing.assert_array_equal(
        model.get_layer("conv2_block1_1_conv").get_weights()[0],
        reference.get_layer("conv2_block1_1_conv").get_weights()[0],
    )


@pytest.mark.parametrize(
    ("weights", "cache", "error", "match"),
    [
        ("imagenet", None, ValueError, "needs a weights cache"),
        ("imagenet", "empty", FileNotFoundError, "resnet50_weights_tf_dim_ordering"),
        ("missing.h5", None, FileNotFoundError, "missing.h5"),
        ("places365", None, ValueError, "None, 'imagenet' or a file path"),
    ],
)
def test_weights_errors_and_no_download(
    tmp_path: Path, weights: str, cache: str | None, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        build_model(
            "resnet50",
            (32, 32, 1),
            weights=str(tmp_path / weights) if weights.endswith(".h5") else weights,
            weights_cache=tmp_path if cache else None,
        )


@pytest.mark.parametrize(
    ("sidecar", "passes"),
    [(None, True), ("good", True), ("0" * 64 + "  x.h5", False), ("", False)],
)
def test_local_weights_cache_checks_the_sha256_sidecar(
    imagenet_cache: tuple[Path, keras.Model], sidecar: str | None, passes: bool
) -> None:
    cache, _ = imagenet_cache
    weights_file = cache / BACKBONES["resnet50"].imagenet_file
    if sidecar is not None:
        digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
        text = f"{digest}  {weights_file.name}\n" if sidecar == "good" else sidecar
        weights_file.with_name(weights_file.name + ".sha256").write_text(text)
    if passes:
        build_model("resnet50", (32, 32, 1), weights="imagenet", weights_cache=cache)
        return
    with pytest.raises(IntegrityError, match=f"{weights_file.name}: sha256 .* differs"):
        build_model("resnet50", (32, 32, 1), weights="imagenet", weights_cache=cache)


@pytest.mark.parametrize("damage", ["truncated", "other backbone", "keras3 weights"])
def test_unloadable_weights_file_is_named(tmp_path: Path, damage: str) -> None:
    target = tmp_path / BACKBONES["vgg16"].imagenet_file
    if damage == "truncated":
        reference = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(32,) * 2 + (3,)
        )
        write_keras_applications_file(target, reference)
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "other backbone":
        other = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))
        write_keras_applications_file(target, other)
    else:
        model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
        model.save_weights(tmp_path / "v.weights.h5")
        (tmp_path / "v.weights.h5").rename(target)
    with pytest.raises(
        ValueError, match=rf"vgg16: cannot load ImageNet weights from .*{target.name}"
    ):
        build_model("vgg16", (32, 32, 1), weights="imagenet", weights_cache=tmp_path)


def test_whole_model_weights_file(tmp_path: Path) -> None:
    source = build_model("vgg16", (32, 32, 1))
    source.save_weights(tmp_path / "vgg.weights.h5")
    loaded = build_model("vgg16", (32, 32, 1), weights=tmp_path / "vgg.weights.h5")
    batch = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict(batch, verbose=0), source.predict(batch, verbose=0)
    )


# ------------------------------------------------------------------ weights from an S3 cache


@pytest.mark.parametrize(
    ("location", "local_dir", "expected"),
    [
        ("/opt/weights", None, "/opt/weights"),
        ("file:///opt/weights", None, "/opt/weights"),
        ("s3://models/imagenet/keras", "/work/weights", "/work/weights/s3/models/imagenet/keras"),
        ("s3://models", "/work/weights", "/work/weights/s3/models"),
    ],
)
def test_weights_cache_local_folder(location: str, local_dir: str | None, expected: str) -> None:
    cache = WeightsCache(location, local_dir=Path(local_dir) if local_dir else None)
    assert cache.local_folder() == Path(expected)
    assert cache.is_remote is location.startswith("s3://")
    assert str(cache) == location


def test_remote_weights_cache_needs_a_local_dir() -> None:
    with pytest.raises(ValueError, match="needs local_dir"):
        WeightsCache("s3://models/imagenet").local_folder()


WEIGHTS_SHA256 = hashlib.sha256(b"weights").hexdigest()


@pytest.mark.s3
@pytest.mark.parametrize(
    ("name", "sidecar", "error", "match"),
    [
        ("w.h5", None, None, None),
        ("w.h5", f"{WEIGHTS_SHA256}  w.h5\n", None, None),  # sha256sum output
        ("w.h5", WEIGHTS_SHA256.upper(), None, None),
        ("w.h5", hashlib.sha256(b"other").hexdigest(), IntegrityError, "sha256 .* differs"),
        ("w.h5", "", IntegrityError, "differs from <empty>"),
        ("other.h5", None, FileNotFoundError, r"has no w\.h5 \(expected s3://.*/w\.h5\)"),
    ],
)
def test_fetch_weights_file_from_s3(
    s3_store, tmp_path: Path, name: str, sidecar: str | None, error: type | None, match: str | None
) -> None:
    s3_store.write_bytes(name, b"weights")
    if sidecar is not None:
        s3_store.write_text(f"{name}.sha256", sidecar)
    if error is not None:
        with pytest.raises(error, match=match):
            fetch_weights_file(s3_store, "w.h5", tmp_path)
        assert list(tmp_path.iterdir()) == []  # nothing written
        return
    copy = fetch_weights_file(s3_store, "w.h5", tmp_path)
    assert copy == tmp_path / "w.h5" and copy.read_bytes() == b"weights"


@pytest.mark.s3
def test_fetched_weights_are_reused_until_the_object_changes(s3_store, tmp_path: Path) -> None:
    s3_store.write_bytes("w.h5", b"first")
    inode = fetch_weights_file(s3_store, "w.h5", tmp_path).stat().st_ino
    assert fetch_weights_file(s3_store, "w.h5", tmp_path).stat().st_ino == inode  # not copied
    s3_store.write_bytes("w.h5", b"second, longer")
    copy = fetch_weights_file(s3_store, "w.h5", tmp_path)
    assert copy.read_bytes() == b"second, longer" and copy.stat().st_ino != inode
    copy.write_bytes(b"sec")  # the local copy damaged: copied again, not reused
    assert fetch_weights_file(s3_store, "w.h5", tmp_path).read_bytes() == b"second, longer"


@pytest.mark.s3
def test_imagenet_weights_from_an_s3_cache(
    s3_server, s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in VGG16 'notop' file in the bucket loads, summed over colour, with no internet."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    spec = BACKBONES["vgg16"]
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    write_keras_applications_file(tmp_path / spec.imagenet_file, reference)
    data = (tmp_path / spec.imagenet_file).read_bytes()
    s3_store.write_bytes(spec.imagenet_file, data)
    s3_store.write_text(spec.imagenet_file + ".sha256", hashlib.sha256(data).hexdigest())
    cache = WeightsCache(s3_store.uri(), s3_server.endpoint_url, local_dir=tmp_path / "work")
    model = build_model("vgg16", (32, 32, 1), weights="imagenet", weights_cache=cache)
    rgb_kernel, bias = reference.get_layer("block1_conv1").get_weights()
    kernel, loaded_bias = model.get_layer("block1_conv1").get_weights()
    assert kernel.shape == (3, 3, 1, 64)
    np.testing.assert_allclose(kernel, rgb_kernel.sum(axis=2, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(loaded_bias, bias)
    for got, want in zip(
        model.get_layer("block5_conv3").get_weights(),
        reference.get_layer("block5_conv3").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    assert (cache.local_folder() / spec.imagenet_file).read_bytes() == data


@pytest.mark.s3
def test_imagenet_weights_missing_from_the_s3_cache_names_uri_and_file(
    s3_server, s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    cache = WeightsCache(s3_store.uri(), s3_server.endpoint_url, local_dir=tmp_path)
    expected = f"{s3_store.uri()}{BACKBONES['vgg16'].imagenet_file}"
    with pytest.raises(FileNotFoundError, match=expected):
        build_model("vgg16", (32, 32, 1), weights="imagenet", weights_cache=cache)


# --------------------------------------------------------------------------- listing


def test_list_models_counts_and_too_small_rows() -> None:
    table = list_models((75, 75, 1), names=["vgg16", "resnet50v2_fpn"])
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(75, 75, 1))
    expected_vgg = vgg.count_params() + 512 * 2 + 2  # + Dense(2) on the pooled 512 features
    rows = table.set_index("name")
    assert rows.loc["vgg16", "total_params"] == expected_vgg
    assert rows.loc["vgg16", "non_trainable_params"] == 0
    assert rows.loc["resnet50v2_fpn", "total_params"] == -1
    assert "96x96" in rows.loc["resnet50v2_fpn", "note"]
    assert rows.loc["vgg16", "imagenet_file"] == BACKBONES["vgg16"].imagenet_file


@pytest.mark.slow
def test_models_command_at_512() -> None:
    text = run_models_command((512, 512, 1))
    assert "113,173,250" in text and "151,424" in text
    for name in BACKBONES:
        assert name in text


def test_get_backbone_returns_spec() -> None:
    assert get_backbone("resnet152").application is keras.applications.ResNet152
