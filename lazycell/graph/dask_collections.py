"""dask collections as lazycell graphs: recognise them, convert their graphs.

dask is imported only here and only when the user hands us a dask object,
so ``import lazycell`` never loads it.
"""

from __future__ import annotations

from lazycell.graph.spec import specs_from_dask


def is_dask_collection(obj) -> bool:
    """True for a dask collection instance (array, dataframe, bag, dask.delayed...)."""
    graph = getattr(type(obj), "__dask_graph__", None)
    return graph is not None and not isinstance(obj, type)


def dask_graph_and_keys(collections: list, optimize_graph: bool) -> tuple[dict, list]:
    """Convert dask collections to specs; one output key per collection (finalized)."""
    from dask._expr import FinalizeCompute
    from dask.base import collections_to_expr
    from dask.core import flatten

    expr = FinalizeCompute(collections_to_expr(list(collections), optimize_graph)).optimize()
    keys = list(flatten(expr.__dask_keys__()))
    if len(keys) != len(collections):
        raise RuntimeError(
            f"lazycell: expected one finalized key per dask collection, got {len(keys)} "
            f"for {len(collections)}; please report this with your dask version"
        )
    return specs_from_dask(expr.__dask_graph__()), keys
