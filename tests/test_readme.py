"""The README's Python examples run as written, in order, in one namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run_as_written():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {"__name__": "readme"}
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
        expected = sum(1 for r in range(100_000) if r % 3)
        assert namespace["total"].compute(scheduler="sync") == expected
        assert len(namespace["events"]) > 0
    finally:
        import lazycell

        lazycell.config.reset()
