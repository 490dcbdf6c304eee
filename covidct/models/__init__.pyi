"""Public names of ``covidct.models``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .backbones import (
    BACKBONES as BACKBONES,
    FPN_FEATURE_SIZE as FPN_FEATURE_SIZE,
    FPN_LAYERS as FPN_LAYERS,
    LSTM_UNITS as LSTM_UNITS,
    ApplicationFn as ApplicationFn,
    BackboneSpec as BackboneSpec,
    InputShape as InputShape,
    Weights as Weights,
    build_model as build_model,
    get_backbone as get_backbone,
    list_models as list_models,
    parameter_counts as parameter_counts,
    run_models_command as run_models_command,
)
from .backend import (
    JAX as JAX,
    TENSORFLOW as TENSORFLOW,
    TORCH as TORCH,
    backend_name as backend_name,
    keep_tensorflow_out as keep_tensorflow_out,
    set_random_seed as set_random_seed,
    tensorflow_imported as tensorflow_imported,
    to_numpy as to_numpy,
    uses_tensorflow as uses_tensorflow,
)
from .weights import (
    SHA256_SIDECAR as SHA256_SIDECAR,
    ChannelAdaptation as ChannelAdaptation,
    WeightsCache as WeightsCache,
    WeightsCacheLike as WeightsCacheLike,
    WeightsSpec as WeightsSpec,
    fetch_weights_file as fetch_weights_file,
    load_weights as load_weights,
    resolve_weights_file as resolve_weights_file,
    transfer_trunk_weights as transfer_trunk_weights,
)
