#!/usr/bin/env python3
"""Create the stack's S3 buckets if they are missing (the `s3-init` job; idempotent).

Environment: ``COVIDCT_BUCKETS`` (comma-separated names), ``COVIDCT_S3_ENDPOINT_URL`` (the S3
server; unset for AWS), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. Waits up to
``S3_WAIT_S`` (60) seconds for the endpoint, then exits 0 when every bucket exists, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("create_buckets")
S3_WAIT_S = 60.0


def ensure_bucket(client, name: str) -> bool:  # noqa: ANN001 - a boto3 S3 client
    """Create bucket ``name`` unless it exists; return True when it was created."""
    try:
        client.head_bucket(Bucket=name)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=name)
    return True


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    names = [n.strip() for n in os.environ.get("COVIDCT_BUCKETS", "").split(",") if n.strip()]
    if not names:
        logger.error("COVIDCT_BUCKETS is empty: nothing to create")
        return 1
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("COVIDCT_S3_ENDPOINT_URL") or None,
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    deadline = time.monotonic() + S3_WAIT_S
    while True:
        try:
            for name in names:
                created = ensure_bucket(client, name)
                logger.info("bucket %s %s", name, "created" if created else "exists")
            return 0
        except (BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                logger.error("S3 not usable after %.0f s: %s", S3_WAIT_S, error)
                return 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
