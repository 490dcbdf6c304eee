"""A small secret scanner for the repository's files (the rules of gitleaks / detect-secrets).

:func:`scan_text` reports key-like strings (private keys, cloud and chat tokens), secrets
assigned to secret-named keys, and high-entropy tokens. A line is allowed with the comment
``secret-scan: allow <reason>``. Values that are placeholders (``CHANGE_ME``, ``<...>``),
interpolations (``${VAR}``) or code (attribute access, calls) are not secrets.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2_000_000
ALLOW = re.compile(r"secret-scan:\s*allow\s+\S+")
KEY_LIKE: dict[str, re.Pattern[str]] = {
    "private-key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "aws-access-key-id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "slack-token": re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),
    "slack-webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/\w{8,}"),
    "github-token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
ASSIGNED = re.compile(
    r"(?i)(?P<key>[\w.-]*(?:password|passwd|secret|token|api_?key|access_?key|fernet_?key)"
    r"[\w.-]*)[\"']?\s*(?::|=|:=)\s*[\"']?(?P<value>[^\s\"',;)}\]]{12,})"
)
#: Long base64/base64url-like tokens ("/" excluded: URL paths are not tokens).
TOKEN = re.compile(r"(?<![\w/+=.-])[A-Za-z0-9+_-]{32,}={0,2}(?![\w/+=.-])")
PLACEHOLDER = re.compile(r"(?i)change_?me|<[^>]*>|x{4,}|example|placeholder|dummy|redacted")
#: Bits per character above which an assigned value counts as random.
ASSIGNED_ENTROPY = 3.5
#: Bits per character above which a bare long token counts as random (hex tops out at 4.0).
TOKEN_ENTROPY = 4.5


@dataclass(frozen=True)
class Leak:
    """A suspected secret: file, line number, rule (never the value itself)."""

    path: str
    line: int
    rule: str


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character (0.0 for '')."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _is_code_or_placeholder(value: str) -> bool:
    return bool(
        PLACEHOLDER.search(value)
        or value.startswith(("$", "{", "%", "/", "./", "os.", "env", "settings", "self."))
        or re.fullmatch(r"\??[A-Z][A-Z0-9_]*", value)  # an environment variable's name
        or "(" in value
        or re.fullmatch(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+", value)  # attribute access
        or re.fullmatch(r"[a-z]+(?:[_-][a-z0-9]+)*", value)  # a name, e.g. test-secret-key
    )


def scan_line(line: str) -> list[str]:
    """Return the rules that ``line`` breaks."""
    if ALLOW.search(line):
        return []
    rules = [rule for rule, pattern in KEY_LIKE.items() if pattern.search(line)]
    for match in ASSIGNED.finditer(line):
        value = match["value"]
        if not _is_code_or_placeholder(value) and entropy(value) >= ASSIGNED_ENTROPY:
            rules.append("assigned-secret")
    for match in TOKEN.finditer(line):
        token = match.group()
        if entropy(token) >= TOKEN_ENTROPY and not _is_code_or_placeholder(token):
            rules.append("high-entropy-token")
    return sorted(set(rules))


def scan_text(path: str, text: str) -> list[Leak]:
    """Return every suspected secret in ``text`` (the content of ``path``)."""
    return [
        Leak(path, number, rule)
        for number, line in enumerate(text.splitlines(), start=1)
        for rule in scan_line(line)
    ]


#: Folders skipped when the tree is not a git checkout (environments, caches, build outputs).
NOT_SOURCE = frozenset({".git", ".venv", ".demo", "__pycache__", ".pytest_cache", ".mypy_cache",
                        ".ruff_cache", ".hypothesis", "node_modules"})  # fmt: skip


def repository_files(repo: Path) -> list[Path]:
    """Tracked files plus untracked ones git does not ignore (what a commit could carry).

    Outside a git checkout (a source archive), every file not under :data:`NOT_SOURCE`.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
    )
    if listed.returncode != 0:
        return sorted(
            path
            for path in repo.rglob("*")
            if path.is_file() and not NOT_SOURCE.intersection(path.relative_to(repo).parts)
        )
    names = listed.stdout.decode().split("\0")
    return sorted({repo / name for name in names if name and (repo / name).is_file()})


def scan_files(repo: Path, files: list[Path]) -> list[Leak]:
    """Scan text files (binary and files over MAX_BYTES are skipped)."""
    leaks = []
    for file in files:
        data = file.read_bytes()
        if len(data) > MAX_BYTES or b"\0" in data[:8192]:
            continue
        leaks.extend(scan_text(file.relative_to(repo).as_posix(), data.decode("utf-8", "replace")))
    return leaks
