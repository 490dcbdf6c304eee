"""The Keras 3 backend a process runs on, and the few operations that differ between backends.

Keras reads ``KERAS_BACKEND`` (``tensorflow``, the default; ``jax``; ``torch``) once, when it is
first imported. TensorFlow stays the default: its host input pipeline (``tf.data``) and
its ``tf.function`` train step are what the CPU demo was tuned on. Under any other backend
covidct imports no ``tensorflow`` module (the data come through the NumPy pipeline,
:mod:`covidct.data.host`; Grad-CAM through :func:`covidct.evaluation.features_and_gradients`,
``jax.grad`` or ``torch.autograd``), which is what lets the product train on a GPU host that
has JAX or PyTorch but no TensorFlow. The switch is the environment: ``KERAS_BACKEND=jax make
demo`` passes it through ``infra/demo.sh`` to ``airflow dags test`` and every task process.
"""

from __future__ import annotations

import random
import sys

import keras
import numpy as np

TENSORFLOW = "tensorflow"
JAX = "jax"
TORCH = "torch"


def backend_name() -> str:
    """The Keras backend of this process: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return str(keras.backend.backend())


def uses_tensorflow() -> bool:
    """True when Keras runs on TensorFlow (then ``tf.data`` and ``tf.function`` are used)."""
    return backend_name() == TENSORFLOW


def tensorflow_imported() -> bool:
    """True when any ``tensorflow`` module is loaded in this process (``sys.modules``)."""
    return any(name == TENSORFLOW or name.startswith("tensorflow.") for name in sys.modules)


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and Keras's random generators (and TensorFlow's under TF).

    ``keras.utils.set_random_seed`` does the same but imports TensorFlow whenever it is
    installed, whatever the backend; this calls it only under TensorFlow and otherwise sets
    what it sets for the other backends (Keras's global seed, ``torch.manual_seed``).
    """
    if uses_tensorflow():
        keras.utils.set_random_seed(seed)
        return
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if backend_name() == TORCH:
        import torch

        torch.manual_seed(seed)


def to_numpy(tensor: object) -> np.ndarray:
    """A backend tensor (or NumPy array) as a NumPy array, float32 when it was bfloat16."""
    array = np.asarray(keras.ops.convert_to_numpy(tensor))
    if array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    return array


def keep_tensorflow_out() -> None:
    """Under JAX or PyTorch, stop Keras itself from importing TensorFlow.

    Keras 3 probes ``tensorflow`` (a lazy module whose ``available`` imports it when installed)
    while serialising a model (``serialize_keras_object`` checks for ``tf.TensorShape``) and in
    a few utilities, whatever the backend; with ``tensorflow-cpu`` installed beside JAX every
    ``model.save`` would load TensorFlow (about 2 s and 600 MB). This marks the probe
    unavailable, which is true for that process: nothing else of it uses TensorFlow. Nothing
    changes under TensorFlow or once TensorFlow is imported. Called when this module is
    imported (every covidct module that builds, trains, saves or loads a model imports it).
    """
    if uses_tensorflow() or tensorflow_imported():
        return
    from keras.src.utils import module_utils

    probe = module_utils.tensorflow
    if probe.module is None:
        probe._available = False


keep_tensorflow_out()
