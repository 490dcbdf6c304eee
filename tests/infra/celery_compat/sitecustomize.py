"""Compatibility shim for the topology test ONLY: put back ``celery.backends.database.retry``.

celery 5.7.0 (in uv.lock) removed the ``retry`` decorator from ``celery.backends.database``;
apache-airflow-providers-celery 3.26.0 (in uv.lock) still imports it, so every Celery command
(``airflow celery worker``, and the scheduler with the CeleryExecutor) fails at import. The real
fix belongs to the lock: ``celery>=5.5,<5.7`` until a provider release stops importing it.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the topology test puts this
folder on the ``PYTHONPATH`` of the Airflow processes it starts. The shim does nothing when
``retry`` exists (celery < 5.7, or a future celery that restores it). It re-creates celery
5.6's decorator: retry the call up to ``max_retries`` (3) times on database errors.
"""

from __future__ import annotations

import functools
import logging
import os

try:
    import celery.backends.database as _database
except ImportError:  # no celery here: nothing to patch
    _database = None

if _database is not None and not hasattr(_database, "retry"):
    from sqlalchemy.exc import DatabaseError, InvalidRequestError
    from sqlalchemy.orm.exc import StaleDataError

    def retry(function):  # noqa: ANN001, ANN201 - celery 5.6's untyped decorator
        """Call ``function``; retry on DatabaseError, InvalidRequestError, StaleDataError."""

        @functools.wraps(function)
        def _inner(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            max_retries = kwargs.pop("max_retries", 3)
            for attempt in range(max_retries):
                try:
                    return function(*args, **kwargs)
                except (DatabaseError, InvalidRequestError, StaleDataError):
                    logging.getLogger(__name__).warning(
                        "failed operation %s; %d retries left",
                        function.__name__,
                        max_retries - attempt - 1,
                        exc_info=True,
                    )
                    if attempt + 1 >= max_retries:
                        raise
            return None

        return _inner

    _database.retry = retry  # type: ignore[attr-defined]
    os.environ["COVIDCT_CELERY_RETRY_SHIM"] = "active"
