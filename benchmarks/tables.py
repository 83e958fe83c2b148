"""What the bench scripts share: an aligned text table, and the cluster benches' start."""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def print_table(header: tuple, rows: list) -> None:
    """``header`` and ``rows`` as columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def cluster_bench_start(doc: str, quick, full):
    """Parse ``--quick``, silence warnings; ``(settings, "lazycell ..., dask.distributed ..."``
    machine line)``: ``quick`` with ``--quick``, else ``full()``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller, faster smoke run")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import distributed

    import lazycell as lc

    machine = (
        f"lazycell {lc.__version__}, dask.distributed {distributed.__version__}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    return (quick if args.quick else full()), machine
