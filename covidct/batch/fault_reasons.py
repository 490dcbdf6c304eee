"""One reason per fault: drop a check's failures that only restate an earlier check's.

A slice stored as uint8 fails ``dtype`` ("pixel type is not uint16"); its maximum is <= 255 as
well, so the ``eight_bit`` check ("uint16 image holding 8-bit data") fails on it too, and the
verdict would name the same slice twice with two reasons that contradict each other.
:data:`DERIVED` lists such checks with the checks they follow from; :func:`one_reason_per_fault`
removes, from a derived check's failure, every file the primary check already named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from covidct.batch.checks import Check, Failure

#: derived check -> the checks whose failure on the same file makes it meaningless
DERIVED: Mapping[Check, tuple[Check, ...]] = {Check.EIGHT_BIT: (Check.DTYPE,)}


def _name_of(example: str) -> str:
    """The file named by one example (``"path (col=value, ...)"`` or ``"path"``)."""
    return example.split(" (", 1)[0]


def one_reason_per_fault(failures: Sequence[Failure]) -> list[Failure]:
    """``failures`` without the derived checks' files already failed by their primary check.

    A derived failure left with no file is dropped; otherwise its count, examples and names
    shrink to the files no primary check named. Failures of other checks are kept as they are,
    in their order. Needs the failures' ``names`` (every failing row, as
    :func:`covidct.batch.validation.validate_batch`'s slice table gives them).
    """
    named: dict[Check, set[str]] = {}
    for failure in failures:
        named.setdefault(failure.check, set()).update(failure.names)
    kept = []
    for failure in failures:
        primaries = DERIVED.get(failure.check, ())
        already = set().union(*(named.get(check, set()) for check in primaries))
        if not already or not failure.names:
            kept.append(failure)
            continue
        names = tuple(name for name in failure.names if name not in already)
        if not names:
            continue
        kept.append(
            dataclasses.replace(
                failure,
                count=failure.count - (len(failure.names) - len(names)),
                examples=tuple(e for e in failure.examples if _name_of(e) not in already),
                names=names,
            )
        )
    return kept
