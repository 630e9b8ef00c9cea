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


def test_fit_throughput_times_another_checkout_side_by_side(tmp_path):
    """``--against`` alternates fresh processes of another checkout (here this one), this tree with the sine kernel
    off, and this tree, and reports each one's times and speed against the first."""
    out = tmp_path / "side.json"
    args = ["--device", "cpu", "--batches", "2", "--steps", "3", "--recipe", "learned", "--peak-size", "256"]
    cmd = [sys.executable, "-m", "benchmarks.fit_throughput", *args, "--against", str(ROOT), "--rounds", "1"]
    run = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(out.read_text())["side_by_side"]
    assert [r["contender"].split(" (")[0].split(",")[0] for r in rows] == ["before", "now", "now"]
    assert rows[1]["sine"] == "torch" and rows[0]["speedup_vs_before"] == 1.0
    assert all(len(r["ms_per_field_step"]) == 1 and r["best"] > 0 for r in rows)
