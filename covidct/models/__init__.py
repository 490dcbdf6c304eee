"""The backbones and their ImageNet weights.

Modules:

* ``backbones``: backbone registry (the seed's seven and ResNet50V2-FPN), model building, ``covidct
  models``
* ``weights``: ImageNet weights from a local or object-store cache, checked; RGB kernels adapted to
  one channel

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.models.backbones import (
        BACKBONES,
        FPN_FEATURE_SIZE,
        FPN_LAYERS,
        LSTM_UNITS,
        ApplicationFn,
        BackboneSpec,
        InputShape,
        Weights,
        build_model,
        get_backbone,
        list_models,
        parameter_counts,
        run_models_command,
    )
    from covidct.models.weights import (
        SHA256_SIDECAR,
        ChannelAdaptation,
        WeightsCache,
        WeightsCacheLike,
        fetch_weights_file,
        load_weights,
        resolve_weights_file,
        transfer_trunk_weights,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ApplicationFn": "covidct.models.backbones",
    "BACKBONES": "covidct.models.backbones",
    "BackboneSpec": "covidct.models.backbones",
    "ChannelAdaptation": "covidct.models.weights",
    "FPN_FEATURE_SIZE": "covidct.models.backbones",
    "FPN_LAYERS": "covidct.models.backbones",
    "InputShape": "covidct.models.backbones",
    "LSTM_UNITS": "covidct.models.backbones",
    "SHA256_SIDECAR": "covidct.models.weights",
    "Weights": "covidct.models.backbones",
    "WeightsCache": "covidct.models.weights",
    "WeightsCacheLike": "covidct.models.weights",
    "build_model": "covidct.models.backbones",
    "fetch_weights_file": "covidct.models.weights",
    "get_backbone": "covidct.models.backbones",
    "list_models": "covidct.models.backbones",
    "load_weights": "covidct.models.weights",
    "parameter_counts": "covidct.models.backbones",
    "resolve_weights_file": "covidct.models.weights",
    "run_models_command": "covidct.models.backbones",
    "transfer_trunk_weights": "covidct.models.weights",
}

__all__ = [
    "ApplicationFn",
    "BACKBONES",
    "BackboneSpec",
    "ChannelAdaptation",
    "FPN_FEATURE_SIZE",
    "FPN_LAYERS",
    "InputShape",
    "LSTM_UNITS",
    "SHA256_SIDECAR",
    "Weights",
    "WeightsCache",
    "WeightsCacheLike",
    "build_model",
    "fetch_weights_file",
    "get_backbone",
    "list_models",
    "load_weights",
    "parameter_counts",
    "resolve_weights_file",
    "run_models_command",
    "transfer_trunk_weights",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
