"""Grad-CAM (Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391) of any backbone: the
feature layer is found, the class score's gradients are taken through it and the class
activation map is the ReLU of the gradient-weighted feature maps, resized to the slice.

The gradient is taken by the backend Keras runs on, behind one function
(:func:`features_and_gradients`): ``tf.GradientTape`` under TensorFlow, ``jax.grad`` under JAX
(the feature map gets a zero perturbation whose gradient is d y^c / d A), ``torch.autograd``
under PyTorch; no TensorFlow module is imported under the other two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

from covidct.data.host import resize_bilinear
from covidct.evaluation.metrics import POSITIVE_INDEX
from covidct.keras_backend import JAX, TORCH, backend_name, to_numpy

logger = logging.getLogger(__name__)

#: Class explained by default: index 1 = COVID (:data:`covidct.schema.CLASS_NAMES`).
DEFAULT_CLASS_INDEX: int = POSITIVE_INDEX


#: Last feature map of each Keras Applications trunk in the registry (ResNet50/152, ResNet50V2,
#: InceptionV3, Xception, VGG16, VGG19). Preferred over later 4-D maps a head may add.
TRUNK_FEATURE_LAYERS: tuple[str, ...] = (
    "conv5_block3_out",
    "post_relu",
    "mixed10",
    "block14_sepconv2_act",
    "block5_conv3",
    "block5_conv4",
)


# Layers whose 4-D output only moves, resamples or masks the pixels of their input.
_NOT_FEATURE_MAPS: tuple[type, ...] = (
    keras.layers.InputLayer,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.UpSampling2D,
    keras.layers.Resizing,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.Reshape,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


# --------------------------------------------------------------------------- layer search


def iter_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model`` in its own order, nested models replaced by their layers
    (depth first). Functional models list layers in topological order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def _output_rank(layer: keras.layers.Layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # never called, or no single output
        return None


def _is_feature_map(layer: keras.layers.Layer) -> bool:
    return _output_rank(layer) == 4 and not isinstance(layer, _NOT_FEATURE_MAPS)


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """The layer called ``name`` in ``model`` or any nested model.

    Raises ValueError naming the model when there is none, or several, of that name.
    """
    found = [layer for layer in iter_layers(model) if layer.name == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"model {model.name}: {len(found)} nested layers are named {name!r}")
    candidates = [layer.name for layer in iter_layers(model) if _is_feature_map(layer)]
    raise ValueError(
        f"model {model.name} has no layer {name!r}; last 4-D feature maps: "
        f"{', '.join(candidates[-5:]) or 'none'}"
    )


def feature_layer(model: keras.Model, layer_name: str | None = None) -> keras.layers.Layer:
    """The layer whose output Grad-CAM explains (rule in the module docstring).

    Raises ValueError when ``layer_name`` is absent or not 4-D, or the model has no 4-D
    feature map.
    """
    if layer_name is not None:
        layer = find_layer(model, layer_name)
        if _output_rank(layer) != 4:
            raise ValueError(
                f"model {model.name}: layer {layer_name!r} output is not 4-D (B, h, w, K)"
            )
        return layer
    candidates = [layer for layer in iter_layers(model) if _is_feature_map(layer)]
    if not candidates:
        raise ValueError(f"model {model.name} has no 4-D convolutional feature map")
    trunk_ends = [layer for layer in candidates if layer.name in TRUNK_FEATURE_LAYERS]
    return (trunk_ends or candidates)[-1]


# --------------------------------------------------------------------------- forward pass


def _output_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The (innermost) layer producing the model's single output, or None if unknown."""
    history = getattr(model.outputs[0], "_keras_history", None) if model.outputs else None
    operation = getattr(history, "operation", None)
    if isinstance(operation, keras.Model):
        return _output_layer(operation)
    return operation if isinstance(operation, keras.layers.Layer) else None


def _is_softmax(function: Any) -> bool:
    return getattr(function, "__name__", "") == "softmax"


@contextmanager
def _logits(model: keras.Model) -> Iterator[bool]:
    """Switch a softmax output activation to linear for the duration; yield whether it did."""
    layer = _output_layer(model)
    if layer is None or not _is_softmax(getattr(layer, "activation", None)):
        logger.debug("model %s: output has no own softmax; explaining it as it is", model.name)
        yield False
        return
    softmax = layer.activation
    layer.activation = keras.activations.linear
    try:
        yield True
    finally:
        layer.activation = softmax


@contextmanager
def _watched(
    layer: keras.layers.Layer, hook: Callable[[Any], Any] | None = None
) -> Iterator[list[Any]]:
    """Record every output ``layer`` produces while the block runs (``hook`` may replace it)."""
    outputs: list[Any] = []
    original = layer.call

    def call(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if hook is not None:
            result = hook(result)
        outputs.append(result)
        return result

    layer.call = call
    try:
        yield outputs
    finally:
        del layer.call  # the instance attribute; the class's call shows through again


def _as_batch(model: keras.Model, images: Any) -> np.ndarray:
    """float32 (B, H, W, C) from (H, W), (H, W, C) or (B, H, W, C); checked against the model."""
    batch = to_numpy(images).astype(np.float32, copy=False)
    expected = tuple(model.input_shape[1:])
    if batch.ndim == 2:
        batch = batch[..., np.newaxis]
    if batch.ndim == 3:
        batch = batch[np.newaxis]
    shape = tuple(batch.shape[1:])
    if len(shape) != len(expected) or any(
        want is not None and want != got for want, got in zip(expected, shape, strict=True)
    ):
        raise ValueError(f"model {model.name} expects input (B, {expected}), got {batch.shape}")
    return batch


def _check_class_index(model: keras.Model, class_index: int) -> None:
    classes = model.output_shape[-1]
    if not 0 <= class_index < classes:
        raise ValueError(f"model {model.name}: class_index {class_index} not in [0, {classes})")


def features_and_gradients(
    model: keras.Model,
    images: Any,
    *,
    class_index: int = DEFAULT_CLASS_INDEX,
    layer_name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature map ``A`` and ``d y^c / d A``, both float32 (B, h, w, K), for a batch.

    ``images``: float32 model inputs (B, H, W, C) (or one image, (H, W[, C])), NumPy or a backend
    tensor. Runs the model eagerly with ``training=False`` (once under TensorFlow and PyTorch,
    twice under JAX), taking the gradient with the backend's own autodiff (module docstring).
    Raises ValueError for a multi-output model, an input
    of the wrong shape, a class index out of range, or a layer the output does not depend on.
    """
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name} has {len(model.outputs)} outputs; Grad-CAM needs 1")
    _check_class_index(model, class_index)
    batch = _as_batch(model, images)
    layer = feature_layer(model, layer_name)
    gradient = {JAX: _jax_gradients, TORCH: _torch_gradients}.get(
        backend_name(), _tensorflow_gradients
    )
    with _logits(model):
        features, gradients = gradient(model, layer, batch, class_index)
    return to_numpy(features).astype(np.float32), to_numpy(gradients).astype(np.float32)


def _no_output(model: keras.Model, layer: keras.layers.Layer) -> ValueError:
    return ValueError(f"model {model.name}: layer {layer.name} did not run in the forward pass")


def _no_gradient(model: keras.Model, layer: keras.layers.Layer) -> ValueError:
    return ValueError(f"model {model.name}: the output does not depend on layer {layer.name}")


def _tensorflow_gradients(
    model: keras.Model, layer: keras.layers.Layer, batch: np.ndarray, class_index: int
) -> tuple[Any, Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape, _watched(layer, _watch_on(tape)) as outputs:
        scores = model(tf.convert_to_tensor(batch), training=False)[:, class_index]
    if not outputs:
        raise _no_output(model, layer)
    gradients = tape.gradient(scores, outputs[-1])
    if gradients is None:
        raise _no_gradient(model, layer)
    return outputs[-1], gradients


def _watch_on(tape: Any) -> Callable[[Any], Any]:
    def watch(result: Any) -> Any:
        tape.watch(result)
        return result

    return watch


def _torch_gradients(
    model: keras.Model, layer: keras.layers.Layer, batch: np.ndarray, class_index: int
) -> tuple[Any, Any]:
    import torch

    with _watched(layer) as outputs:
        scores = model(keras.ops.convert_to_tensor(batch), training=False)[:, class_index]
    if not outputs:
        raise _no_output(model, layer)
    features = outputs[-1]
    if not (features.requires_grad and scores.requires_grad):
        raise _no_gradient(model, layer)
    (gradients,) = torch.autograd.grad(scores.sum(), features, allow_unused=True)
    if gradients is None:
        raise _no_gradient(model, layer)
    return features.detach(), gradients


def _jax_gradients(
    model: keras.Model, layer: keras.layers.Layer, batch: np.ndarray, class_index: int
) -> tuple[Any, Any]:
    """d y^c / d A as the gradient of the summed scores with respect to a zero ``delta`` added
    to the layer's last output (a first pass counts its calls and gives A's shape)."""
    import jax
    import jax.numpy as jnp

    with _watched(layer) as probe:
        model(batch, training=False)
    if not probe:
        raise _no_output(model, layer)
    last, features = len(probe) - 1, probe[-1]

    def score(delta: Any) -> Any:
        calls = [0]

        def add(result: Any) -> Any:
            calls[0] += 1
            return result + delta.astype(result.dtype) if calls[0] - 1 == last else result

        with _watched(layer, add):
            return jnp.sum(model(batch, training=False)[:, class_index].astype(jnp.float32))

    gradients = jax.grad(score)(jnp.zeros(features.shape, jnp.float32))
    if not bool(jnp.any(gradients != 0)) and not _depends(model, layer, batch, class_index):
        raise _no_gradient(model, layer)
    return features, gradients


def _depends(model: keras.Model, layer: keras.layers.Layer, batch: np.ndarray, index: int) -> bool:
    """Whether the class score changes when the layer's output is perturbed (a zero gradient
    can be genuine, e.g. behind a ReLU that is off everywhere)."""
    baseline = to_numpy(model(batch, training=False)[:, index])
    with _watched(layer, lambda result: result + 1.0):
        moved = to_numpy(model(batch, training=False)[:, index])
    return not np.array_equal(baseline, moved)


# --------------------------------------------------------------------------- Grad-CAM


def cam_from_gradients(
    features: np.ndarray, gradients: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Grad-CAM eqs. 1-2 (module docstring), resized to ``size`` = (H, W), scaled to [0, 1].

    ``features``, ``gradients``: (B, h, w, K). Returns float32 (B, H, W); an image whose map has
    no positive value gets all zeros.
    """
    weights = gradients.mean(axis=(1, 2))  # eq. 1: (B, K)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", features, weights), 0.0)  # eq. 2
    resized = resize_bilinear(cam, size)
    resized = np.maximum(resized, 0.0)
    peak = resized.max(axis=(1, 2), keepdims=True)
    scaled = np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0)
    return scaled.astype(np.float32)


def gradcam_batch(
    model: keras.Model,
    images: Any,
    *,
    class_index: int = DEFAULT_CLASS_INDEX,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps: float32 (B, H, W) in [0, 1] for float32 inputs (B, H, W, C).

    ``class_index`` defaults to 1 = COVID. Raises ValueError as :func:`features_and_gradients`.
    """
    batch = _as_batch(model, images)
    features, gradients = features_and_gradients(
        model, batch, class_index=class_index, layer_name=layer_name
    )
    return cam_from_gradients(features, gradients, tuple(batch.shape[1:3]))


def gradcam(
    model: keras.Model,
    image: Any,
    *,
    class_index: int = DEFAULT_CLASS_INDEX,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmap of one image: float32 (H, W) in [0, 1], resized to the input.

    ``image``: float32 model input (H, W) or (H, W, C), preprocessed as the model was trained.
    Raises ValueError as :func:`features_and_gradients`.
    """
    batch = _as_batch(model, image)
    if batch.shape[0] != 1:
        raise ValueError(f"gradcam takes one image, got a batch of {batch.shape[0]}")
    return gradcam_batch(model, batch, class_index=class_index, layer_name=layer_name)[0]


def feature_layer_names(model: keras.Model) -> Sequence[str]:
    """Names of the candidate feature-map layers, in search order (for error messages, CLIs)."""
    return [layer.name for layer in iter_layers(model) if _is_feature_map(layer)]
