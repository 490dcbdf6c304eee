"""The backbones and their ImageNet weights.

Modules:

* ``backbones``: backbone registry (the seed's seven and ResNet50V2-FPN), model building, ``covidct
  models``
* ``weights``: ImageNet weights from a local or object-store cache, checked; RGB kernels adapted to
  one channel
* ``backend``: the process's Keras backend, seeding, no TensorFlow under JAX or PyTorch

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
