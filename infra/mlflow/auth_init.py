#!/usr/bin/env python3
"""Accounts of the stack's MLflow server (basic-auth app), run by ``start.sh`` before the server.

Creates, or updates the passwords of, three kinds of account in the auth database
(``MLFLOW_AUTH_DATABASE_URI``) from the environment (Compose passes them from ``.env``):

* ``MLFLOW_ADMIN_USER`` / ``MLFLOW_ADMIN_PASSWORD``: MLflow's admin, to manage accounts only;
* ``MLFLOW_PIPELINE_USER`` / ``MLFLOW_PIPELINE_PASSWORD``: the pipeline's account, the only one
  granted ``MANAGE`` on the registered model ``COVIDCT_MODEL_NAME``: it alone registers
  versions and moves aliases (``@champion``), through the gate and its audit ledger;
* ``MLFLOW_VIEWER_USER`` / ``MLFLOW_VIEWER_PASSWORD``: the account for people, ``READ`` on the
  model (and, like every account the admin adds later, ``READ`` by default elsewhere).

The server's ``default_permission`` is ``READ`` (``start.sh`` writes the auth config), so
people see every run and model but cannot register, promote or edit aliases. Idempotent: a
changed password in ``.env`` takes effect on the next start. Prints no secret.
"""

from __future__ import annotations

import os
import sys

MODEL_RESOURCE = "registered_model"


def _require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"auth_init: {name} is not set (see .env.example)")
    return value


def ensure_user(store, username: str, password: str, *, is_admin: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Create ``username`` or reset its password and admin flag."""
    if store.has_user(username):
        store.update_user(username, password=password, is_admin=is_admin)
    else:
        store.create_user(username, password, is_admin=is_admin)


def main() -> int:
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(_require("MLFLOW_AUTH_DATABASE_URI"))
    model = os.environ.get("COVIDCT_MODEL_NAME") or "covidct-classifier"
    admin = os.environ.get("MLFLOW_ADMIN_USER") or "mlflow-admin"
    pipeline = os.environ.get("MLFLOW_PIPELINE_USER") or "covidct-pipeline"
    viewer = os.environ.get("MLFLOW_VIEWER_USER") or "viewer"
    if len({admin, pipeline, viewer}) != 3:
        raise SystemExit("auth_init: the admin, pipeline and viewer accounts must differ")
    ensure_user(store, admin, _require("MLFLOW_ADMIN_PASSWORD"), is_admin=True)
    ensure_user(store, pipeline, _require("MLFLOW_PIPELINE_PASSWORD"))
    ensure_user(store, viewer, _require("MLFLOW_VIEWER_PASSWORD"))
    store.grant_user_permission(pipeline, MODEL_RESOURCE, model, "MANAGE")
    store.grant_user_permission(viewer, MODEL_RESOURCE, model, "READ")
    print(f"auth_init: accounts {admin} (admin), {pipeline} (MANAGE on {model}), {viewer} (READ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
