"""Rows of a view (progress per group, memory per worker) kept across computes.

Building a row's widgets takes milliseconds of the GIL; a view that renders
during a compute takes them from the compute's workers. So rows that are no
longer shown become spares, renamed when a new name needs a row, and a view
builds the spares it will surely need with the panel, before any compute.
"""

from __future__ import annotations

from collections.abc import Callable


def reuse_rows(rows: dict, names: list, spares: list, make_row: Callable) -> dict:
    """``{name: row}`` for ``names`` in order: rows already shown keep their name,
    spares (and rows no longer shown, which join them) are renamed, and only the
    rest are built with ``make_row(name)``. A row has a settable ``name``."""
    spares += [row for name, row in rows.items() if name not in names]
    new_rows = {}
    for name in names:
        row = rows.get(name)
        if row is None and spares:
            row = spares.pop(0)
            row.name = name
        new_rows[name] = row if row is not None else make_row(name)
    return new_rows


class BarNamedRow:
    """A row whose name, as :func:`reuse_rows` renames it, is its bar's description."""

    bar: object

    @property
    def name(self) -> str:
        return self.bar.description

    @name.setter
    def name(self, name: str) -> None:
        self.bar.description = name
