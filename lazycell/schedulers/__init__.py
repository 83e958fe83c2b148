"""Local schedulers: one execution core (``core``), several executors.

``sync`` runs tasks in the calling thread, ``threads`` on a persistent thread
pool, ``processes`` on warm worker processes, ``executor`` on any
``concurrent.futures.Executor``, ``get_function`` through a dask-style
``get``. ``pools`` keeps the pooled schedulers' warm pools between computes
and bounds their size. ``registry`` holds every scheduler's names and maker (these and the
ones higher layers register); ``lazycell.api`` turns a user's choice into a
scheduler through it.
"""
