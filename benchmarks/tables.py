"""Printing a benchmark's results as an aligned text table (shared by the bench scripts)."""

from __future__ import annotations


def print_table(header: tuple, rows: list) -> None:
    """``header`` and ``rows`` as columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
