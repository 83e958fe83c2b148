"""What the JupyterLab extension's feed costs a compute, in a real kernel.

One ipykernel (this interpreter). Computes of a graph of small tasks on the
threads scheduler, alternating between

- off: lazycell imported, the extension not loaded (no comm, nothing tracks);
- listener: the extension not loaded, one raw event listener that does
  nothing (what any view, the notebook panel too, makes the schedulers record);
- on: ``%load_ext lazycell`` and a front end holding the ``lazycell`` comm
  (this script, over jupyter_client), so the kernel folds every compute and
  sends its state a few times a second.

Prints the median wall time of each, their ratio, and how many state
messages the kernel sent per second of compute and their mean size.

    .venv/bin/python scripts/bench_lab_comm.py [--tasks 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid

from jupyter_client.manager import start_new_kernel

SETUP = """\
import time, lazycell as lc

def inc(x):
    return x + 1

def timed_compute(n):
    parts = [lc.delayed(inc)(i) for i in range(n)]
    total = lc.delayed(sum)(parts)
    start = time.perf_counter()
    lc.compute(total, scheduler="threads", num_workers=2)
    print("SECONDS", time.perf_counter() - start)
"""


def run(client, code: str, on_iopub=None, timeout: float = 600) -> str:
    printed = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content'].get('evalue')}")
    return "".join(printed)


def timed(client, tasks: int) -> tuple[float, list[dict]]:
    """Seconds of one compute, and the lazycell messages IOPub carried meanwhile."""
    msg_id = client.execute(f"timed_compute({tasks})")
    seconds, messages = None, []
    while True:
        msg = client.get_iopub_msg(timeout=600)
        if msg["msg_type"] == "comm_msg" and "lazycell" in msg["content"]["data"]:
            messages.append(msg["content"]["data"])
        elif msg["msg_type"] == "stream" and "SECONDS" in msg["content"]["text"]:
            seconds = float(msg["content"]["text"].split()[1])
        elif (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    assert seconds is not None
    return seconds, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        run(client, SETUP)
        run(client, f"timed_compute({args.tasks})")  # warm up the pool and imports
        off, listener, on, states, sizes = [], [], [], 0, []
        for _ in range(args.repeat):
            run(client, "%unload_ext lazycell")
            off.append(timed(client, args.tasks)[0])
            run(client, "noop = lc.events.BUS.subscribe(lambda r, b: None, raw=True)")
            listener.append(timed(client, args.tasks)[0])
            run(client, "noop.close()")
            run(client, "%load_ext lazycell")
            comm_id = uuid.uuid4().hex
            content = {"comm_id": comm_id, "target_name": "lazycell", "data": {}}
            client.shell_channel.send(client.session.msg("comm_open", content))
            seconds, messages = timed(client, args.tasks)
            on.append(seconds)
            state_messages = [m for m in messages if m["type"] == "state"]
            states += len(state_messages)
            sizes += [len(json.dumps(m)) for m in state_messages]
        off_median, on_median = statistics.median(off), statistics.median(on)
        print(f"{args.tasks:,} tasks on threads (2 workers), {args.repeat} runs each, medians:")
        listener_median = statistics.median(listener)
        print(f"  extension off      {off_median:8.3f} s")
        print(f"  a no-op listener   {listener_median:8.3f} s")
        print(f"  lab comm open      {on_median:8.3f} s")
        print(f"  ratio on / off     {on_median / off_median:8.3f}")
        print(f"  ratio on / no-op listener {on_median / listener_median:8.3f}")
        print(f"  state messages     {states / sum(on):8.1f} per second of compute")
        print(f"  mean message size  {statistics.mean(sizes) if sizes else 0:8.0f} bytes")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
