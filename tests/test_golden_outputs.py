"""The outputs of fixed CLI runs (demo, refine per method, sample, torchrun) are bit-identical to the recorded ones.

A refactoring must not change a result; a change that is meant to (a new noise stream, a fixed bug) re-records
them with ``python tests/golden_runs.py --record`` and says so in the CHANGELOG. See ``tests/golden_runs.py``.
"""

from __future__ import annotations

import pytest

from golden_runs import load_golden, platform_key, run_all


def test_cli_outputs_match_the_recorded_digests(tmp_path):
    golden = load_golden()
    if golden["platform"] != platform_key():
        pytest.skip(f"golden outputs were recorded on '{golden['platform']}', this is '{platform_key()}' "
                    "(float results depend on the CPU's BLAS kernels); re-record with python tests/golden_runs.py --record")
    runs = run_all(tmp_path)
    assert sorted(runs) == sorted(golden["runs"])
    changed = [f"{run}/{f}" for run, files in golden["runs"].items() for f in sorted(set(files) | set(runs[run]))
               if files.get(f) != runs[run].get(f)]
    assert not changed, f"outputs changed: {changed}"
