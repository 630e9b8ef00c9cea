"""Scale-out on Ray (a local instance, as ``--ray auto`` starts it): the same samples folder and zoo as the single
process, resume after a killed driver, retries of a killed worker, and lost batches stored as retryable failures."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from shapezoo.core.ray_tasks import TaskSpec, connect, run_tasks
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.fit_job import fit_zoo
from shapezoo.fields.fitting import FitConfig
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.samples import SampleConfig, sample_meshes
from shapezoo_datasets import generate

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(__import__(__name__))  # workers cannot import this test module
SPEC = FieldSpec(width=16, depth=2)
RECIPE = FitConfig(steps=40, points_per_step=256)


@pytest.fixture(scope="module")
def cluster():
    connect("auto")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    for family in ("vase", "mug", "table"):
        generate(family, 2, root, seed=3)
    return root


def _same_zoo(a: Path, b: Path) -> None:
    za, zb = load_zoo(a), load_zoo(b)
    assert za.names == zb.names and torch.equal(za.params, zb.params)
    assert json.loads((a / "zoo.json").read_text()) == json.loads((b / "zoo.json").read_text())
    assert sorted(p.name for p in a.glob("weights-*")) == sorted(p.name for p in b.glob("weights-*"))
    for p in a.glob("*.safetensors"):
        assert p.read_bytes() == (b / p.name).read_bytes()  # the same bytes, not only the same tensors


def test_ray_sampling_and_fitting_write_the_single_process_folders(cluster, shapes, tmp_path):
    config = SampleConfig(points=4000)
    local = sample_meshes(shapes, tmp_path / "s_local", config)
    remote = sample_meshes(shapes, tmp_path / "s_ray", config, ray="auto")
    assert local == remote  # samples.json: same entries in the same order
    for entry in local["shapes"]:  # the same bytes: safetensors headers are written in one canonical order
        assert (tmp_path / "s_local" / entry["file"]).read_bytes() == (tmp_path / "s_ray" / entry["file"]).read_bytes()
    threads = torch.get_num_threads()
    fit_zoo(tmp_path / "s_local", tmp_path / "z_local", SPEC, RECIPE, batch=2)
    summary = fit_zoo(tmp_path / "s_local", tmp_path / "z_ray", SPEC, RECIPE, batch=2, ray="auto", threads=threads)
    assert summary["ray"] == "auto" and summary["ok"] == 6
    _same_zoo(tmp_path / "z_local", tmp_path / "z_ray")  # bit for bit: same batches, same thread count


def test_killed_driver_resumes_without_rewriting_finished_shards(cluster, shapes, tmp_path):
    sample_meshes(shapes, tmp_path / "s", SampleConfig(points=4000))
    fit_zoo(tmp_path / "s", tmp_path / "full", SPEC, RECIPE, batch=2)

    def stop_after_first(entries):
        raise KeyboardInterrupt  # the driver dies after its first shard is listed

    with pytest.raises(KeyboardInterrupt):
        fit_zoo(tmp_path / "s", tmp_path / "z", SPEC, RECIPE, batch=2, ray="auto", on_batch=stop_after_first)
    first = tmp_path / "z" / "weights-00000.safetensors"
    stamp = first.stat().st_mtime_ns
    summary = fit_zoo(tmp_path / "s", tmp_path / "z", SPEC, RECIPE, batch=2, ray="auto")
    assert summary["fitted_now"] == 4 and first.stat().st_mtime_ns == stamp
    _same_zoo(tmp_path / "full", tmp_path / "z")


def _worker_pids() -> list[int]:
    """PIDs of Ray workers running a task right now (their process title names the task)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"ray::_in_task" in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _kill_first_worker(done: threading.Event, killed: list[int]) -> None:
    while not done.is_set() and not killed:
        pids = _worker_pids()
        if pids:
            time.sleep(0.2)  # mid-task
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        time.sleep(0.05)


def _fit_while_killing(samples: Path, out: Path, recipe: FitConfig, retries: int) -> tuple[dict, list[int]]:
    done, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_first_worker, args=(done, killed))
    watcher.start()
    try:
        summary = fit_zoo(samples, out, SPEC, recipe, batch=3, ray="auto", threads=1, retries=retries)
    finally:
        done.set()
        watcher.join()
    assert killed, "no worker was seen running"
    return summary, killed


def test_a_killed_worker_is_retried_and_the_zoo_is_complete(cluster, shapes, tmp_path):
    sample_meshes(shapes, tmp_path / "s", SampleConfig(points=4000))
    recipe = FitConfig(steps=3000, points_per_step=512)  # long enough to be killed mid-task
    summary, _ = _fit_while_killing(tmp_path / "s", tmp_path / "z", recipe, retries=2)
    assert summary["ok"] == 6 and summary["failed"] == []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tasks' count: the retried batch computes the same bytes
    try:
        fit_zoo(tmp_path / "s", tmp_path / "local", SPEC, recipe, batch=3)
    finally:
        torch.set_num_threads(threads)
    _same_zoo(tmp_path / "local", tmp_path / "z")


def test_a_batch_lost_past_its_retries_is_stored_failed_and_refitted_by_the_next_run(cluster, shapes, tmp_path):
    sample_meshes(shapes, tmp_path / "s", SampleConfig(points=4000))
    recipe = FitConfig(steps=3000, points_per_step=512)
    summary, _ = _fit_while_killing(tmp_path / "s", tmp_path / "z", recipe, retries=0)
    lost = [f for f in summary["failed"] if "task lost" in f["error"]]
    assert len(lost) == 3 and summary["ok"] == 3  # the other batch is kept
    zoo = load_zoo(tmp_path / "z")  # a valid zoo, the lost fields marked failed
    assert sorted(n for n in zoo.names if zoo.unusable(n)) == sorted(f["name"] for f in lost)
    again = fit_zoo(tmp_path / "s", tmp_path / "z", SPEC, recipe, batch=3, ray="auto", threads=1)
    assert again["fitted_now"] == 3 and again["ok"] == 6 and again["failed"] == []
    assert all(load_zoo(tmp_path / "z").unusable(n) is None for n in zoo.names)


def _die() -> int:
    os._exit(3)


def test_tasks_lost_past_their_retries_are_named_and_the_rest_kept(cluster):
    def double_or_die(x: int) -> int:
        return _die() if x == 1 else 2 * x

    results, errors = [], []
    run_tasks(
        double_or_die,
        [(0,), (1,), (2,)],
        TaskSpec(retries=0),
        lambda i, r: results.append((i, r)),
        lambda i, e: errors.append((i, e)),
    )
    assert results == [(0, 0), (2, 4)]
    assert len(errors) == 1 and errors[0][0] == 1 and "Worker" in errors[0][1]


def test_ray_init_learning_gives_the_single_process_init(cluster, shapes, tmp_path):
    from shapezoo.fields.learned_init import InitConfig, learn_init
    from shapezoo.io import load_tensors

    sample_meshes(shapes, tmp_path / "s", SampleConfig(points=4000))
    config = InitConfig(outer_steps=3, inner_steps=10, batch=4, points_per_step=256, checkpoint_every=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tasks' count
    try:
        local = learn_init([tmp_path / "s"], tmp_path / "local", SPEC, config)
    finally:
        torch.set_num_threads(threads)
    remote = learn_init([tmp_path / "s"], tmp_path / "ray", SPEC, config, ray="auto", threads=1)
    weights = [load_tensors(tmp_path / k / "init.safetensors", framework="pt")[0]["params"] for k in ("local", "ray")]
    assert torch.equal(*weights)
    assert [c["loss"] for c in local["curve"]] == [c["loss"] for c in remote["curve"]]


def test_cli_fit_with_ray_names_its_options_and_refuses_a_device_it_cannot_honour(cluster, shapes, tmp_path):
    from typer.testing import CliRunner

    from shapezoo_cli.main import app

    sample_meshes(shapes, tmp_path / "s", SampleConfig(points=4000))
    runner = CliRunner()
    args = ["fit", str(tmp_path / "s"), "--out", str(tmp_path / "z"), "--width", "16", "--depth", "2"]
    res = runner.invoke(app, [*args, "--steps", "20", "--batch", "3", "--ray", "auto", "--device", "cuda:3"])
    assert res.exit_code == 1 and "with --ray: use auto" in res.output
    res = runner.invoke(app, [*args, "--steps", "20", "--batch", "3", "--ray", "auto", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["ray"] == "auto"


def test_a_folder_workers_cannot_write_stops_the_job_with_one_line(cluster):
    from shapezoo.core.ray_tasks import StorageError

    def unwritable(i: int) -> int:
        raise StorageError(f"/shared/zoo/weights-{i:05d}.safetensors: cannot be written (Read-only file system)")

    with pytest.raises(StorageError, match="Read-only file system"):
        run_tasks(unwritable, [(0,), (1,)], TaskSpec(), lambda i, r: None, lambda i, e: None)
