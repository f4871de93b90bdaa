"""What both IMDb parsers' fast-path tests share: title ids neither parser accepts, and
files of plain rows with the odd rows under test mixed in among them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reelset.imdb.tsv import MAX_ID_DIGITS

BAD_IDS = [
    b"xx0000012",  # not tt
    b"tt",  # no digits
    b"tt" + b"1" * (MAX_ID_DIGITS + 1),  # too many digits
    b"tt\xd9\xa1",  # an Arabic-Indic digit
]
"""Both parsers want ``tt`` and 1 to ``MAX_ID_DIGITS`` ASCII digits; each test makes rows
of its own file's shape around these."""


def with_odd_rows(
    columns: Sequence[str], rows: Iterable[bytes], odd: Sequence[bytes], *, every: int,
    plain: bytes,
) -> list[bytes]:
    """The header, then ``rows``, with the next of ``odd`` (``plain`` once they run out)
    before every ``every``-th of them."""
    lines = [b"\t".join(c.encode() for c in columns)]
    left = iter(odd)
    for number, row in enumerate(rows, start=1):
        if number % every == 0:
            lines.append(next(left, plain))
        lines.append(row)
    return lines
