"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.models.backbones import (
        BACKBONES as BACKBONES,
    )
    from covidct.models.backbones import (
        FPN_FEATURE_SIZE as FPN_FEATURE_SIZE,
    )
    from covidct.models.backbones import (
        FPN_LAYERS as FPN_LAYERS,
    )
    from covidct.models.backbones import (
        LSTM_UNITS as LSTM_UNITS,
    )
    from covidct.models.backbones import (
        SHA256_SIDECAR as SHA256_SIDECAR,
    )
    from covidct.models.backbones import (
        ApplicationFn as ApplicationFn,
    )
    from covidct.models.backbones import (
        BackboneSpec as BackboneSpec,
    )
    from covidct.models.backbones import (
        ChannelAdaptation as ChannelAdaptation,
    )
    from covidct.models.backbones import (
        InputShape as InputShape,
    )
    from covidct.models.backbones import (
        Weights as Weights,
    )
    from covidct.models.backbones import (
        WeightsCache as WeightsCache,
    )
    from covidct.models.backbones import (
        WeightsCacheLike as WeightsCacheLike,
    )
    from covidct.models.backbones import (
        build_model as build_model,
    )
    from covidct.models.backbones import (
        fetch_weights_file as fetch_weights_file,
    )
    from covidct.models.backbones import (
        get_backbone as get_backbone,
    )
    from covidct.models.backbones import (
        list_models as list_models,
    )
    from covidct.models.backbones import (
        load_weights as load_weights,
    )
    from covidct.models.backbones import (
        parameter_counts as parameter_counts,
    )
    from covidct.models.backbones import (
        resolve_weights_file as resolve_weights_file,
    )
    from covidct.models.backbones import (
        run_models_command as run_models_command,
    )
    from covidct.models.backbones import (
        transfer_trunk_weights as transfer_trunk_weights,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ApplicationFn": "covidct.models.backbones",
    "BACKBONES": "covidct.models.backbones",
    "BackboneSpec": "covidct.models.backbones",
    "ChannelAdaptation": "covidct.models.backbones",
    "FPN_FEATURE_SIZE": "covidct.models.backbones",
    "FPN_LAYERS": "covidct.models.backbones",
    "InputShape": "covidct.models.backbones",
    "LSTM_UNITS": "covidct.models.backbones",
    "SHA256_SIDECAR": "covidct.models.backbones",
    "Weights": "covidct.models.backbones",
    "WeightsCache": "covidct.models.backbones",
    "WeightsCacheLike": "covidct.models.backbones",
    "build_model": "covidct.models.backbones",
    "fetch_weights_file": "covidct.models.backbones",
    "get_backbone": "covidct.models.backbones",
    "list_models": "covidct.models.backbones",
    "load_weights": "covidct.models.backbones",
    "parameter_counts": "covidct.models.backbones",
    "resolve_weights_file": "covidct.models.backbones",
    "run_models_command": "covidct.models.backbones",
    "transfer_trunk_weights": "covidct.models.backbones",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
