#!/usr/bin/env python3
"""Refuse to start the stack with empty, default or weak secrets (the `secrets-check` job).

Reads the variables named on the command line (default: all of ``SECRET_VARS``) from the
environment (Compose passes them from ``.env``) and exits 1, naming every offending variable
but never printing a value, when one is:

* empty or missing;
* a known default (``airflow``, ``minio123``, ``changeme``, ...), or still the ``CHANGE_ME``
  placeholder of ``.env.example``;
* shorter than ``MIN_LENGTH`` (16) characters, or made of fewer than ``MIN_DISTINCT`` (8)
  distinct characters;
* (passwords that end up inside URLs) not URL-safe: only ``A-Z a-z 0-9 - _ . ~``;
* (``AIRFLOW_FERNET_KEY``) not a Fernet key: 32 bytes in URL-safe base64.

Exit 0 when all pass. Standard library only. ``python3 infra/init/generate_env.py`` writes a
``.env`` that passes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping

SECRET_VARS: tuple[str, ...] = (
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "REDIS_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "FLOWER_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_PIPELINE_PASSWORD",
    "MLFLOW_VIEWER_PASSWORD",
    "MLFLOW_FLASK_SECRET_KEY",
)
#: Secrets placed inside connection URLs (redis://:pw@..., postgresql://user:pw@...).
URL_SECRETS: frozenset[str] = frozenset(
    {"POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "REDIS_PASSWORD", "S3_ACCESS_KEY"}
)
FERNET_VAR = "AIRFLOW_FERNET_KEY"
PLACEHOLDER = "CHANGE_ME"
MIN_LENGTH = 16
MIN_DISTINCT = 8
#: Defaults shipped by Airflow, MinIO, SeaweedFS, PostgreSQL images and tutorials.
KNOWN_DEFAULTS: frozenset[str] = frozenset(
    {
        "", "admin", "administrator", "airflow", "changeme", "change-me", "change_me",
        "default", "example", "letmein", "minio", "minio123", "minioadmin", "mlflow",
        "password", "password123", "postgres", "qwerty", "redis", "root", "seaweedfs",
        "secret", "test", "12345678", "123456789", "1234567890",
    }
)  # fmt: skip
URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


def problems_of(name: str, value: str | None) -> list[str]:
    """Return what is wrong with secret ``name`` (empty list when it is acceptable)."""
    if not value:
        return [f"{name} is empty or missing"]
    found = []
    if value.strip().lower() in KNOWN_DEFAULTS or value.upper().startswith(PLACEHOLDER):
        found.append(f"{name} is a known default or the {PLACEHOLDER} placeholder")
    if len(value) < MIN_LENGTH or len(set(value)) < MIN_DISTINCT:
        found.append(
            f"{name} is too weak (need >= {MIN_LENGTH} characters, >= {MIN_DISTINCT} distinct)"
        )
    if name in URL_SECRETS and not URL_SAFE.match(value):
        found.append(f"{name} must be URL-safe (A-Z a-z 0-9 - _ . ~): it is used inside URLs")
    if name == FERNET_VAR and not _is_fernet_key(value):
        found.append(f"{name} is not a Fernet key (32 bytes, URL-safe base64)")
    return found


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def check(env: Mapping[str, str], names: tuple[str, ...] = SECRET_VARS) -> list[str]:
    """Return every problem of the secrets ``names`` in ``env``."""
    return [problem for name in names for problem in problems_of(name, env.get(name))]


def main(argv: list[str]) -> int:
    """Check the secrets named in ``argv`` (default: all of ``SECRET_VARS``); 0 ok, 1 refused."""
    names = tuple(argv) or SECRET_VARS
    problems = check(os.environ, names)
    for problem in problems:
        sys.stderr.write(f"secrets-check: {problem}\n")
    if problems:
        sys.stderr.write(
            "secrets-check: refusing to start; run `python3 infra/init/generate_env.py > .env`"
            " or edit .env (see .env.example)\n"
        )
        return 1
    sys.stdout.write(f"secrets-check: {len(names)} secrets present and strong\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
