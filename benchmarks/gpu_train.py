"""ResNet152 training throughput at 512x512: the ``paper`` profile against ``gpu-fast``.

For each profile: build the model as :func:`covidct.training.train_model` does (same strategy,
dtype policy, compile options, on-host or on-device Table 5 augmentation), feed it from
:func:`covidct.data.make_dataset` over real uint16 TIFF files (cached after the first epoch),
run ``--warmup`` steps (tracing, XLA compilation), then time ``--steps`` steps and print:

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["paper", "gpu-fast"])
    parser.add_argument("--backbone", default="resnet152")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=0, help="per replica; 0 = profile's")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--peak-flops", type=float, default=H200_BF16_DENSE_PEAK_FLOPS)
    parser.add_argument("--profiler", action="store_true", help="cross-check FLOPs with tf")
    parser.add_argument("--tiny", action="store_true", help="64x64, batch 2, 3 steps (CPU)")
    args = parser.parse_args()

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if args.tiny:
        args.image_size, args.batch_size, args.warmup, args.steps, args.files = 64, 2, 1, 3, 8
    elif not gpus:
        print("no GPU visible: refusing the full benchmark (use --tiny to check the script)")
        return 2
    print(
        f"GPUs: {[gpu.name for gpu in gpus] or 'none'}; peak {args.peak_flops / 1e12:.0f} TFLOP/s"
    )
    with tempfile.TemporaryDirectory() as scratch:
        paths = write_slices(Path(scratch), args.files, 512)
        rows = [time_profile(profile, args, paths) for profile in args.profiles]
    header = (
        f"{'profile':>9} {'GPUs':>4} {'batch':>5} {'build s':>7} {'warm-up s':>9} "
        f"{'images/s':>9} {'GFLOP/img':>9} {'TFLOP/s':>8} {'of peak':>7}"
    )
    print(f"{args.backbone} {args.image_size}x{args.image_size}x1, {args.steps} timed steps")
    print(header)
    for row in rows:
        print(
            f"{row['profile']:>9} {row['replicas']:>4} {row['global_batch']:>5} "
            f"{row['build_s']:7.1f} {row['warmup_s']:9.1f} {row['images_per_s']:9.1f} "
            f"{row['train_flops_per_image'] / 1e9:9.1f} {row['achieved_tflops']:8.1f} "
            f"{row['fraction_of_peak']:7.1%}"
        )
    if len(rows) == 2:
        print(
            f"speed-up {rows[1]['profile']} / {rows[0]['profile']}: "
            f"{rows[1]['images_per_s'] / rows[0]['images_per_s']:.2f}x"
        )
    if args.profiler:
        from covidct.models import build_model

        model = build_model(args.backbone, (args.image_size, args.image_size, 1))
        print(
            f"forward GFLOP/image: analytic {analytic_forward_flops(model) / 1e9:.2f}, "
            f"tf.profiler {profiler_forward_flops(model) / 1e9:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
