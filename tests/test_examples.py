import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_example_runs_end_to_end_with_tiny_flags(tmp_path):
    pipeline = _load("pipeline")
    args = [
        "--out",
        str(tmp_path / "run"),
        "--per-family",
        "1",
        "--points",
        "3000",
        "--steps",
        "150",
        "--lr",
        "3e-3",
        "--width",
        "16",
        "--resolution",
        "32",
        "--device",
        "cpu",
    ]
    summary = pipeline.main(args)
    assert summary["shapes"] == 5 and summary["fields_ok"] == 5 and not summary["failed"]
    assert len(list((tmp_path / "run" / "meshes").glob("*.obj"))) == 5
    assert summary["eval"]["chamfer_l2"]["median"] > 0
    again = pipeline.main(args)  # resumes: nothing refitted, same fields
    assert again["fields_ok"] == 5
