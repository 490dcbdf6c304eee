"""How the DAG steps and the pages reach the lake: open the lake of the settings, a local folder
of a prefix, and JSON documents at a key.

One floor below every reader (the report, the pipeline, the model cards), so that none of them
has to import the pipeline's step helpers to read what a run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from covidct.config import Settings


def open_lake(settings: Settings) -> Any:
    """The data lake's object store (:func:`covidct.lake.backends.open_store` of
    ``settings.lake``: a local folder or an S3 prefix). Raises ValueError on an unknown URI
    scheme."""
    from covidct.lake import backends

    return backends.open_store(settings.lake.uri, endpoint_url=settings.lake.s3_endpoint_url)


def materialize(store: Any, prefix: str, settings: Settings) -> Path:
    """A local folder holding ``prefix`` (the folder itself on a local lake, else a copy under
    ``<work_dir>/cache/<prefix>``). Raises what the store raises."""
    local_root = getattr(store, "root", None)
    if local_root is not None:
        return Path(local_root) / prefix
    return Path(store.download_prefix(prefix, settings.work_dir / "cache" / prefix))


def write_json(store: Any, key: str, payload: Any) -> str:
    """Write ``payload`` as indented, key-sorted JSON (``str()`` for what JSON lacks) at lake key
    ``key``; return the key. Raises what the store raises."""
    store.write_bytes(key, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())
    return key


def read_json(store: Any, key: str) -> Any:
    """The JSON document at lake key ``key``; None when ``key`` is empty or absent."""
    return json.loads(store.read_bytes(key)) if key and store.exists(key) else None
