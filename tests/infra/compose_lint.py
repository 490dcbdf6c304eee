"""Static checks of ``docker-compose.yaml``: interpolation, schema validation and a security lint.

No Docker is needed. :func:`interpolate` implements the Compose Specification's interpolation
(``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR?err}``,
``${VAR:+alt}``, ``$$`` escapes); :func:`lint` implements the security rules that tools such as
KICS and Checkov apply to Compose files, each returning a :class:`Finding`. A deliberate
exception is a comment in the compose file, ``# lint-waiver <rule> <service>: <reason>``,
with a reason of at least :data:`MIN_WAIVER_REASON` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Keys whose values are secrets (matched on the upper-cased environment variable name).
SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|PRIVATE_KEY|ACCESS_KEY|API_KEY|BASIC_AUTH"
)
#: Names that hold a path or a command that yields the secret, not the secret itself.
SECRET_INDIRECTION = ("_FILE", "_CMD", "_PATH")
REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")
_REF = re.compile(r"\$\{[^}]*\}")
#: After masking: ``scheme://user:password@host``, the password part.
_URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@\s/]+)@")
_REQUIRED, _OTHER = "\x00", "\x01"
WAIVER = re.compile(r"#\s*lint-waiver\s+(?P<rule>[a-z-]+)\s+(?P<service>[\w.-]+):\s*(?P<why>.+)")
MIN_WAIVER_REASON = 20
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is unset or empty; names it."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Return ``text`` with every variable substituted from ``env`` (Compose semantics).

    Raises InterpolationError naming the variable and its message for a failed ``?`` reference.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":?", "?") and unset_or_empty:
            raise InterpolationError(f"{name}: {arg}")
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _VAR.sub(substitute, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Return the parsed compose document ``node`` with every string value interpolated.

    Compose interpolates values after parsing the YAML (comments are never interpolated).
    """
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


def variables(text: str) -> dict[str, str | None]:
    """Return {variable: operator or None} for every reference in ``text`` (escapes ignored)."""
    found: dict[str, str | None] = {}
    for match in _VAR.finditer(text):
        name = match["bare"] or match["name"]
        if name and (found.get(name) is None):
            found[name] = match["op"]
    return found


@dataclass(frozen=True)
class Finding:
    """One lint finding: ``rule`` broken by ``service``, with what was found."""

    rule: str
    service: str
    detail: str


def waivers(text: str) -> dict[tuple[str, str], str]:
    """Return {(rule, service): reason} of the ``# lint-waiver`` comments in ``text``."""
    return {(m["rule"], m["service"]): m["why"].strip() for m in WAIVER.finditer(text)}


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _image_tag(image: str) -> str | None:
    """Return the tag of ``image`` ('' when it has none; None when pinned by digest)."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _volume_sources(service: Mapping[str, Any]) -> Iterator[str]:
    for volume in service.get("volumes") or []:
        yield str(volume.get("source", "")) if isinstance(volume, dict) else volume.split(":")[0]


def _published(service: Mapping[str, Any]) -> Iterator[str]:
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            yield f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target')}"
        else:
            yield str(port)


def check_service(name: str, service: Mapping[str, Any]) -> Iterator[Finding]:
    """Yield every finding of one (merged, uninterpolated) service definition."""
    if service.get("privileged"):
        yield Finding("privileged", name, "privileged: true")
    for key in ("network_mode", "pid", "ipc", "userns_mode"):
        if str(service.get(key, "")) == "host":
            yield Finding("host-namespace", name, f"{key}: host")
    for capability in service.get("cap_add") or []:
        yield Finding("cap-add", name, f"cap_add {capability}")
    for option in service.get("security_opt") or []:
        if "unconfined" in str(option) or "no-new-privileges:false" in str(option):
            yield Finding("security-opt", name, str(option))
    if service.get("devices"):
        yield Finding("host-devices", name, f"devices {service['devices']}")
    for source in _volume_sources(service):
        if "docker.sock" in source or source in ("/", "/etc", "/proc", "/sys", "/var/run"):
            yield Finding("host-mount", name, f"mounts {source}")
    for port in _published(service):
        if not port.startswith("127.0.0.1:"):
            yield Finding("public-port", name, f"port {port} not bound to 127.0.0.1")
    image = str(service.get("image", ""))
    tag = _image_tag(interpolate(image, {}))
    if not image or tag in ("", "latest"):
        yield Finding("image-tag", name, f"image {image!r} has no pinned tag")
    yield from _secret_findings(name, service)
    if "healthcheck" not in service:
        yield Finding("healthcheck", name, "no healthcheck")
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        yield Finding("depends-condition", name, "depends_on without conditions")
    else:
        for other, spec in depends.items():
            if not isinstance(spec, dict) or "condition" not in spec:
                yield Finding("depends-condition", name, f"depends_on {other} has no condition")


def _masked(value: str) -> str:
    """``value`` with each required reference as NUL and any other reference as SOH."""
    return _REF.sub(lambda m: _REQUIRED if REQUIRED_REF.match(m.group()) else _OTHER, value)


def _secret_findings(name: str, service: Mapping[str, Any]) -> Iterator[Finding]:
    """Secrets must come from ``${VAR:?...}`` references: in secret-named keys and URLs."""
    for key, value in _environment(service).items():
        masked = _masked(value)
        is_secret = SECRET_NAME.search(key.upper()) and not key.upper().endswith(SECRET_INDIRECTION)
        if is_secret and not (_REQUIRED in masked and re.fullmatch(r"[\x00\x01:]+", masked)):
            yield Finding("literal-secret", name, f"{key} is not made of ${{VAR:?...}} references")
        for password in _URL_PASSWORD.findall(masked):
            if password != _REQUIRED:
                yield Finding("literal-secret", name, f"{key} has a literal URL password")


def one_shot(name: str, compose: Mapping[str, Any]) -> bool:
    """True when ``name`` never restarts and others wait for it to complete successfully."""
    services = compose["services"]
    waited = any(
        isinstance(other.get("depends_on"), dict)
        and other["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"
        for other in services.values()
    )
    return waited and str(services[name].get("restart", "no")) == "no"


def lint(compose: Mapping[str, Any], text: str) -> list[Finding]:
    """Return the unwaived findings of every service (``text``: the file, for waivers)."""
    waived = waivers(text)
    findings = []
    for name, service in compose["services"].items():
        for finding in check_service(name, service):
            if (finding.rule, finding.service) not in waived:
                findings.append(finding)
        health = service.get("healthcheck") or {}
        if health.get("disable") and not one_shot(name, compose):
            findings.append(Finding("healthcheck", name, "healthcheck disabled on a long-runner"))
    return findings
