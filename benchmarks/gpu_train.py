"""ResNet152 training throughput at 512x512: the ``paper`` profile against ``gpu-fast``.

For each profile: build the model as :func:`covidct.training.train_model` does (same strategy,
dtype policy, compile options, on-host or on-device Table 5 augmentation), feed it from
:func:`covidct.data.make_dataset` over uint16 TIFF files of synthetic CT-like values (cached
after the first epoch), run ``--warmup`` steps (tracing, XLA compilation), then time ``--steps``
steps and print:

    images/s, model FLOPs per image, achieved TFLOP/s and the fraction of the bf16 peak.

Model FLOPs per training image = 3 x forward FLOPs (forward + backward: the usual 1 + 2
convention), forward FLOPs counted analytically (2 x multiply-adds of every Conv2D, Dense and
LSTM layer; pooling, normalisation and activations ignored; cross-checked against
``tf.compat.v1.profiler`` with ``--profiler``). Peak: 989 TFLOP/s, the NVIDIA H200 SXM
datasheet's dense BF16 tensor-core figure (the H100 SXM's; 1,979 with sparsity). The ``paper``
profile runs float32 (TF32 tensor cores, 495 TFLOP/s dense), but is reported against the same
bf16 peak so the two rows compare.

Runs in under 5 minutes on one H200. With no GPU visible it refuses unless ``--tiny`` (64x64,
batch 2, a few steps: checks the script, not the chip).

Backends. Under ``KERAS_BACKEND=tensorflow`` (the default, what the workers run) it times
exactly the training set-up above. Under ``KERAS_BACKEND=jax`` (a GPU host with JAX but no
TensorFlow GPU build, such as the lent H200 machine) it builds the same registry model and the
same :class:`covidct.data.augment.DeviceAugmentation`, compiles with the same Nadam, loss and
learning-rate rule, and feeds the decoded TIFF slices from host memory with ``model.fit``; the
profile settings it uses are :data:`JAX_PROFILES`, which a test holds equal to
:class:`covidct.training.TrainingConfig`'s. Differences under JAX: every step is XLA-compiled
(JAX has no other mode, so the ``paper`` row is XLA too), both profiles augment on the device
(no ``tf.data`` host path), and there is no MirroredStrategy (one GPU). Peak: it also measures a
bf16 8192^3 matrix product on the chip and prints the fraction of that measured ceiling.

Usage: ``python benchmarks/gpu_train.py [--profiles paper gpu-fast] [--steps 30] [--tiny]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

H200_BF16_DENSE_PEAK_FLOPS = 989e12


def write_slices(directory: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        image = rng.normal(600, 300, (size, size)).clip(0, 4095).astype(np.uint16)
        paths.append(directory / f"IM{index:05d}.tif")
        tifffile.imwrite(paths[-1], image)
    return paths


# --------------------------------------------------------------------------- FLOPs


def _conv_flops(layer) -> int:
    kernel = layer.kernel.shape  # (kh, kw, cin / groups, cout)
    _, height, width, _ = layer.output.shape
    return 2 * height * width * int(np.prod(kernel))


def _depthwise_flops(layer) -> int:
    kernel = layer.kernel.shape  # (kh, kw, cin, multiplier)
    _, height, width, _ = layer.output.shape
    return 2 * height * width * int(np.prod(kernel))


def _lstm_flops(layer) -> int:
    steps = layer.input.shape[1]
    units = layer.units
    features = layer.input.shape[-1]
    return 2 * steps * 4 * units * (features + units)


def analytic_forward_flops(model) -> int:
    """2 x multiply-adds of Conv2D, SeparableConv2D, DepthwiseConv2D, Dense, LSTM (one image)."""
    import keras

    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.SeparableConv2D):
            _, height, width, _ = layer.output.shape
            depth = layer.depthwise_kernel.shape
            point = layer.pointwise_kernel.shape
            total += 2 * height * width * (int(np.prod(depth)) + int(np.prod(point)))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += _depthwise_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            total += _conv_flops(layer)
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.LSTM):
            total += _lstm_flops(layer)
    return total


def _all_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def profiler_forward_flops(model) -> int:
    """Forward FLOPs of one image from TensorFlow's graph profiler (float32 graph)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    function = tf.function(lambda images: model(images, training=False))
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)


# --------------------------------------------------------------------------- timing


def time_profile(profile: str, args, paths: list[Path]) -> dict:
    import keras

    from covidct.data import make_dataset
    from covidct.training import (
        TrainingConfig,
        distribution_strategy,
        inference_model,
        new_training_model,
        precision_policy,
    )

    overrides = {"image_size": args.image_size}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    config = TrainingConfig.from_profile(profile, **overrides)
    strategy = distribution_strategy(config)
    replicas = strategy.num_replicas_in_sync
    batch = config.global_batch_size(replicas)
    started = time.perf_counter()
    with precision_policy(config.mixed_precision), strategy.scope():
        model = new_training_model(args.backbone, config, replicas)
    built = time.perf_counter() - started
    dataset = make_dataset(
        paths,
        [index % 2 for index in range(len(paths))],
        image_size=config.image_size,
        batch_size=batch,
        augment=None if config.augment_on_device else config.augment,
        shuffle=True,
        repeat=True,
        drop_remainder=True,
        transform=config.transform,
    )
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.warmup, shuffle=False, verbose=0)
    warm = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, shuffle=False, verbose=0)
    float(model.optimizer.iterations.numpy())  # wait for the device
    elapsed = time.perf_counter() - started
    forward = analytic_forward_flops(inference_model(model, args.backbone))
    rate = args.steps * batch / elapsed
    keras.backend.clear_session()
    return {
        "profile": profile,
        "replicas": replicas,
        "global_batch": batch,
        "build_s": built,
        "warmup_s": warm,
        "images_per_s": rate,
        "train_flops_per_image": 3 * forward,
        "achieved_tflops": 3 * forward * rate / 1e12,
        "fraction_of_peak": 3 * forward * rate / args.peak_flops,
    }


# --------------------------------------------------------------------------- JAX backend

#: Profile settings used under JAX, where :mod:`covidct.training` (TensorFlow) cannot be imported.
#: ``tests/test_gpu_benchmark.py`` holds them equal to ``TrainingConfig.from_profile``.
JAX_PROFILES: dict[str, dict] = {
    "paper": {
        "batch_size": 10,
        "learning_rate": 1e-4,
        "reference_batch_size": 10,
        "linear_learning_rate": False,
        "mixed_precision": False,
        "image_size": 512,
    },
    "gpu-fast": {
        "batch_size": 32,
        "learning_rate": 1e-4,
        "reference_batch_size": 10,
        "linear_learning_rate": True,
        "mixed_precision": True,
        "image_size": 512,
    },
}

#: Lung window of :class:`covidct.data.IntensityTransform` (the default transform): HU level -600,
#: width 1500, HU = stored value - 1024.
LUNG_WINDOW_LOW_STORED = -600.0 - 1500.0 / 2.0 + 1024.0
LUNG_WINDOW_WIDTH = 1500.0


def decode_lung_window(paths: list[Path]) -> np.ndarray:
    """uint16 TIFF slices -> float32 (N, H, W, 1) in [0, 1], lung window (as the default
    ``IntensityTransform``, in numpy because :mod:`covidct.data` needs TensorFlow)."""
    stored = np.stack([tifffile.imread(path) for path in paths]).astype(np.float32)
    return np.clip((stored - LUNG_WINDOW_LOW_STORED) / LUNG_WINDOW_WIDTH, 0.0, 1.0)[..., None]


def measured_bf16_peak(size: int = 8192, repeats: int = 10) -> float:
    """bf16 (size x size) @ (size x size) on the default JAX device, FLOP/s (median of repeats)."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jax.random.normal(keys[0], (size, size), jnp.bfloat16)
    b = jax.random.normal(keys[1], (size, size), jnp.bfloat16)
    product = jax.jit(jnp.matmul)
    product(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        product(a, b).block_until_ready()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / float(np.median(times))


def time_profile_jax(profile: str, args, images: np.ndarray) -> dict:
    import keras

    from covidct.data.augment import DeviceAugmentation
    from covidct.models import get_backbone

    settings = JAX_PROFILES[profile]
    batch = args.batch_size or settings["batch_size"]
    rate = settings["learning_rate"]
    if settings["linear_learning_rate"]:
        rate *= batch / settings["reference_batch_size"]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if settings["mixed_precision"] else "float32")
    try:
        started = time.perf_counter()
        size = images.shape[1]
        backbone = get_backbone(args.backbone).build((size, size, 1), 2, None)
        inputs = keras.Input((size, size, 1), name="slice")
        augmented = (
            inputs
            if args.no_augment
            else DeviceAugmentation(seed=0, name="device_augmentation")(inputs)
        )
        model = keras.Model(inputs, backbone(augmented))
        model.compile(
            optimizer=keras.optimizers.Nadam(learning_rate=rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=True,
        )
        built = time.perf_counter() - started

        def rows(steps: int) -> tuple[np.ndarray, np.ndarray]:
            index = np.arange(steps * batch) % len(images)
            labels = np.eye(2, dtype=np.float32)[index % 2]
            return images[index], labels

        if args.device_resident:  # one batch held on the device, stepped again and again
            import jax

            x, y = rows(1)
            x_dev, y_dev = jax.device_put(x), jax.device_put(y)
            started = time.perf_counter()
            for _ in range(args.warmup):
                logs = model.train_on_batch(x_dev, y_dev, return_dict=True)
            float(logs["loss"])
            warm = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(args.steps):
                logs = model.train_on_batch(x_dev, y_dev, return_dict=True)
            float(logs["loss"])
        else:
            x, y = rows(args.warmup)
            started = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            warm = time.perf_counter() - started
            x, y = rows(args.steps)
            started = time.perf_counter()
            history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            float(history.history["loss"][-1])  # logs are host floats: the device has finished
        elapsed = time.perf_counter() - started
        forward = analytic_forward_flops(backbone)
    finally:
        keras.config.set_dtype_policy(previous)
    keras.backend.clear_session()
    images_per_s = args.steps * batch / elapsed
    return {
        "profile": profile,
        "replicas": 1,
        "global_batch": batch,
        "build_s": built,
        "warmup_s": warm,
        "images_per_s": images_per_s,
        "train_flops_per_image": 3 * forward,
        "achieved_tflops": 3 * forward * images_per_s / 1e12,
        "fraction_of_peak": 3 * forward * images_per_s / args.peak_flops,
    }


def run_jax(args) -> tuple[list[dict], float | None]:
    """Every profile under the JAX backend; returns (rows, measured bf16 FLOP/s or None)."""
    import jax

    devices = jax.devices()
    gpu = devices[0].platform == "gpu"
    print(f"backend jax {jax.__version__}; devices: {[str(device) for device in devices]}")
    if not gpu and not args.tiny:
        print("no GPU visible: refusing the full benchmark (use --tiny to check the script)")
        return [], None
    measured = measured_bf16_peak(8192 if gpu else 512, 10 if gpu else 2)
    print(f"measured bf16 matrix product: {measured / 1e12:.1f} TFLOP/s")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        paths = write_slices(Path(scratch), args.files, 512)
        images = decode_lung_window(paths)
    if args.image_size != 512:
        import keras

        images = np.asarray(keras.ops.image.resize(images, (args.image_size,) * 2))
    rows = []
    started = time.perf_counter()
    for profile in args.profiles:
        if time.perf_counter() - started > args.budget_s:
            print(f"skipping {profile}: past the {args.budget_s:.0f} s budget")
            continue
        rows.append(time_profile_jax(profile, args, images))
        print_row(rows[-1], measured)
    return rows, measured


HEADER = (
    f"{'profile':>9} {'GPUs':>4} {'batch':>5} {'build s':>7} {'warm-up s':>9} "
    f"{'images/s':>9} {'GFLOP/img':>9} {'TFLOP/s':>8} {'of peak':>7} {'of meas.':>8}"
)


def print_row(row: dict, measured: float | None = None) -> None:
    """One table row; ``of meas.`` is the fraction of the measured bf16 ceiling (JAX only)."""
    of_measured = f"{row['achieved_tflops'] * 1e12 / measured:8.1%}" if measured else f"{'-':>8}"
    print(
        f"{row['profile']:>9} {row['replicas']:>4} {row['global_batch']:>5} "
        f"{row['build_s']:7.1f} {row['warmup_s']:9.1f} {row['images_per_s']:9.1f} "
        f"{row['train_flops_per_image'] / 1e9:9.1f} {row['achieved_tflops']:8.1f} "
        f"{row['fraction_of_peak']:7.1%} {of_measured}",
        flush=True,
    )


def run_tensorflow(args) -> list[dict] | None:
    """Every profile under the TensorFlow backend (the workers' set-up); None without a GPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"backend tensorflow {tf.__version__}; GPUs: {[gpu.name for gpu in gpus] or 'none'}")
    if not gpus and not args.tiny:
        print("no GPU visible: refusing the full benchmark (use --tiny to check the script)")
        return None
    print(HEADER, flush=True)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        paths = write_slices(Path(scratch), args.files, 512)
        for profile in args.profiles:
            if time.perf_counter() - started > args.budget_s:
                print(f"skipping {profile}: past the {args.budget_s:.0f} s budget")
                continue
            rows.append(time_profile(profile, args, paths))
            print_row(rows[-1])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description="ResNet152 training throughput at 512x512: the paper profile against "
        "gpu-fast, on one or more GPUs (module docstring: what is measured and how).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--profiles", nargs="+", default=["paper", "gpu-fast"], help="in order")
    parser.add_argument("--backbone", default="resnet152", help="registry name")
    parser.add_argument("--image-size", type=int, default=512, help="pixels, square")
    parser.add_argument("--batch-size", type=int, default=0, help="per replica; 0 = profile's")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compile)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--files", type=int, default=64, help="distinct slices written")
    parser.add_argument(
        "--peak-flops", type=float, default=H200_BF16_DENSE_PEAK_FLOPS, help="FLOP/s for of peak"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="start no further profile after this many seconds",
    )
    parser.add_argument("--profiler", action="store_true", help="cross-check FLOPs with tf")
    parser.add_argument("--no-augment", action="store_true", help="JAX: leave out augmentation")
    parser.add_argument(
        "--device-resident",
        action="store_true",
        help="JAX: step one batch held on the device with train_on_batch (waits every step)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="check the script on a CPU: 64x64, batch 2, 3 steps (about 3 minutes on 2 cores)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.image_size, args.batch_size, args.warmup, args.steps, args.files = 64, 2, 1, 3, 8

    import keras

    backend = keras.backend.backend()
    print(
        f"{args.backbone} {args.image_size}x{args.image_size}x1, {args.steps} timed steps; "
        f"datasheet bf16 peak {args.peak_flops / 1e12:.0f} TFLOP/s"
    )
    measured = None
    if backend == "jax":
        rows, measured = run_jax(args)
    elif backend == "tensorflow":
        rows = run_tensorflow(args)
    else:
        print(f"unsupported Keras backend {backend!r}: use tensorflow or jax")
        return 2
    if not rows:
        return 2
    print(f"\nsummary: {args.backbone} {args.image_size}x{args.image_size}x1, backend {backend}")
    print(HEADER)
    for row in rows:
        print_row(row, measured)
    if len(rows) >= 2:
        print(
            f"speed-up {rows[1]['profile']} / {rows[0]['profile']}: "
            f"{rows[1]['images_per_s'] / rows[0]['images_per_s']:.2f}x"
        )
    if args.profiler and backend == "tensorflow":
        from covidct.models import build_model

        model = build_model(args.backbone, (args.image_size, args.image_size, 1))
        print(
            f"forward GFLOP/image: analytic {analytic_forward_flops(model) / 1e9:.2f}, "
            f"tf.profiler {profiler_forward_flops(model) / 1e9:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
