"""Local schedulers: one execution core (``core``), several executors.

``sync`` runs tasks in the calling thread, ``threads`` on a persistent thread
pool, ``processes`` on warm worker processes, ``executor`` on any
``concurrent.futures.Executor``. ``select`` turns a user's choice into one.
"""
