"""Smoke test of the benchmark harness: ``python -m benchmarks.all --quick`` runs every benchmark at a small size on
tiny procedural data, and each one returns and writes its result with the environment it ran in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_benchmark_runs_quick(tmp_path):
    out = tmp_path / "all.json"
    cmd = [sys.executable, "-m", "benchmarks.all", "--quick", "--work", str(tmp_path / "w"), "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_") and p.stem != "all"}
    assert set(report["benchmarks"]) == scripts  # every benchmark is in the harness
    for name, row in report["benchmarks"].items():
        if row["status"] == "skipped":  # no GPU, or an optional extra not installed (CI installs none)
            assert row["reason"] == "needs CUDA" or row["reason"].startswith("needs jax"), name
            continue
        assert row["status"] == "ok", f"{name}: {row.get('error')}"
        result = json.loads((tmp_path / "w" / "results" / f"{name}.json").read_text())
        assert result == json.loads(json.dumps(row["result"])), name  # main() returns what it writes
        env = result["environment"]
        assert env["torch"] and env["torch_threads"] >= 1 and env["cpu_count"] >= 1, name
    rows = report["benchmarks"]["fit_budget"]["result"]["rows"]
    assert [r["point_evals"] for r in rows] == [50 * 512, 100 * 512]
    assert all(0.0 <= r["median_iou"] <= 1.0 for r in rows)
    chamfer = report["benchmarks"]["chamfer_timing"]["result"]["rows"][0]
    assert chamfer["points"] == 5000 and 0 < chamfer["chamfer_l2"] < 0.01  # two spheres 0.02 apart


def test_harness_refuses_unknown_names_and_full_mode():
    for args, message in ((["--quick", "--only", "nope"], "unknown benchmark"), ([], "only --quick")):
        run = subprocess.run([sys.executable, "-m", "benchmarks.all", *args], cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr
