#!/usr/bin/env python3
"""Print a ``.env`` for docker-compose.yaml with fresh random secrets: ``... > .env``.

Takes ``.env.example`` (beside the repository root) line by line and replaces every
``CHANGE_ME`` value with a random URL-safe secret (``secrets.token_urlsafe``, 32 bytes of
entropy), or a Fernet key for ``AIRFLOW_FERNET_KEY``. Other lines are copied unchanged.
Standard library only; the result passes ``infra/init/check_secrets.py``.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
PLACEHOLDER = "CHANGE_ME"


def fresh_value(name: str) -> str:
    """Return a new secret for variable ``name``."""
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return secrets.token_urlsafe(32)


def render(example: str) -> str:
    """Return ``example`` (the text of .env.example) with every placeholder filled."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            line = f"{name}={fresh_value(name.strip())}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE
    sys.stdout.write(render(source.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
