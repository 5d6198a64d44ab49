"""The notebooks in notebooks/ execute top to bottom (CI runs them) and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # generous per cell: a loaded CI box; the whole quickstart notebook takes ~1 min

# What each notebook must leave behind in its working directory, and how many figures it must show:
# "no cell raised" alone would pass a notebook whose cells silently stopped doing their job.
EXPECTED = {
    "quickstart": (["runs/notebook/best.pt", "runs/notebook/metrics.json", "runs/notebook/examples.png"], 3),
    "android_profiling": (["android_profiling/tiny_mobilenet.tflite",
                           "android_profiling/bench_results/host-*/*.json"], 1),
    "export_quantize": (["exports/notebook/model_float32.tflite", "exports/notebook/model_float16.tflite",
                         "exports/notebook/model_int8.tflite", "exports/notebook/report.json"], 2),
}


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_the_documented_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "android_profiling", "export_quantize"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_and_committed_without_outputs(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: clear the outputs of code cells {dirty} before committing"


def _image_outputs(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_without_errors(path: Path, tmp_path: Path):
    """Runs in a fresh temp working directory with the python3 kernel; any cell error fails the test."""
    nb = _read(path)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on the first error
    errors = [out for c in nb.cells if c.cell_type == "code" for out in c.outputs if out.output_type == "error"]
    assert not errors
    files, figures = EXPECTED.get(path.stem, ([], 0))
    for pattern in files:
        assert list(tmp_path.glob(pattern)), f"{path.name} did not write {pattern}"
    assert _image_outputs(nb) >= figures, f"{path.name} showed fewer than {figures} figures"
