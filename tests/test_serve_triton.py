"""End to end: the cascade exported as a Triton model repository, served by a real ``tritonserver`` (the
``nvidia-pytriton`` binary, from the ``serve`` side environment, installed by ``mtnet envs install serve``; skipped without it),
queried with ``tritonclient`` over HTTP and gRPC on localhost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .conftest import require_side_env

pytestmark = pytest.mark.slow

CONF, MAX_DET, MAX_IMAGES, MAX_BYTES = 0.002, 1000, 4, 200_000  # the fixture models are barely trained (conftest)


@pytest.fixture(scope="module")
def repository(cascade_run, tmp_path_factory) -> Path:
    """The fixture detector with a classifier trained on ground-truth crops only: it never answers background,
    so the barely trained detector's sports-ball boxes come back with sub-type labels."""
    from mtnet.export.triton import TritonOptions, export_triton

    from mtnet.cascade.config import ClassifierConfig
    from mtnet.cascade.train import train_classifier

    out = tmp_path_factory.mktemp("triton")
    cls = train_classifier(ClassifierConfig(name="cls_gt", output_dir=str(out), data_root=str(cascade_run["root"]),
                                            input_size=48, epochs=2, batch_size=16), progress=False)["checkpoint"]
    opts = TritonOptions(conf=CONF, max_det=MAX_DET, multi_label=True, max_images=MAX_IMAGES, max_image_bytes=MAX_BYTES)
    return export_triton(cascade_run["detector"], cls, out / "repo", options=opts)


@pytest.fixture(scope="module")
def server(repository):
    from mtnet.serve.server import TritonServer, free_port

    require_side_env("serve")
    srv = TritonServer(repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def val_files(cascade_run) -> list[Path]:
    return sorted((cascade_run["root"] / "val").glob("*.jpg"))[:3]


@pytest.fixture
def client(server, request):
    """(tritonclient module, client) of the test's protocol, closed after the test."""
    import tritonclient.grpc as tg
    import tritonclient.http as th

    module = th if request.param == "http" else tg
    c = module.InferenceServerClient(server.http_url if request.param == "http" else server.grpc_url)
    yield module, c
    c.close()


def _infer(module, client, data: np.ndarray, dtype: str = "BYTES"):
    inp = module.InferInput("IMAGES", list(data.shape), dtype)
    inp.set_data_from_numpy(data)
    return client.infer("cascade", [inp])


def _images(files: list[Path]) -> np.ndarray:
    return np.array([f.read_bytes() for f in files], dtype=object)


def _canonical(boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by (category, box): the barely trained detector scores many boxes alike, so the order of
    equal scores is not a property to compare."""
    order = np.lexsort((*np.round(boxes, 2).T[::-1], ids))
    return boxes[order], scores[order], ids[order]


def test_repository_is_an_ensemble_with_a_config_per_model(repository):
    for model in ("cascade", "preprocess", "detector", "crop", "classifier", "assemble"):
        assert (repository / model / "config.pbtxt").read_text().startswith(f'name: "{model}"')
        assert (repository / model / "1").is_dir()
    ensemble = (repository / "cascade" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in ensemble
    assert [line.split('"')[1] for line in ensemble.splitlines() if "model_name" in line] == [
        "preprocess", "detector", "crop", "classifier", "assemble"]
    for onnx_model in ("detector", "classifier"):
        assert (repository / onnx_model / "1" / "model.onnx").is_file()
    assert "tritonserver --model-repository" in (repository / "README.md").read_text()


@pytest.mark.parametrize("client", ["http", "grpc"], indirect=True)
def test_served_cascade_equals_the_python_cascade(client, repository, val_files):
    from mtnet.cascade.predictor import Cascade
    from mtnet.data.sample import read_image

    module, client = client
    result = _infer(module, client, _images(val_files))
    boxes, scores = result.as_numpy("BOXES"), result.as_numpy("SCORES")
    ids, image = result.as_numpy("CATEGORY_IDS"), result.as_numpy("IMAGE_INDEX")
    cascade = Cascade.from_paths(repository / "detector" / "1" / "model.onnx", repository / "classifier" / "1" / "model.onnx",
                                 conf=CONF, max_det=MAX_DET, multi_label=True)
    preds = cascade.predict([read_image(str(f)) for f in val_files])
    assert cascade.timing.crops > 0  # the served answers include classifier re-labels
    assert len(ids) == sum(len(p.detections) for p in preds) > 0
    for i, pred in enumerate(preds):
        det, sel = pred.detections, image == i
        served = _canonical(boxes[sel], scores[sel], ids[sel])
        local = _canonical(det.boxes, det.scores, np.asarray(cascade.meta.det_category_ids)[det.labels])
        np.testing.assert_array_equal(served[2], local[2])
        np.testing.assert_allclose(served[0], local[0], atol=1e-3)
        np.testing.assert_allclose(served[1], local[1], atol=1e-5)
    assert set(ids) & {201, 202, 203}  # fine (sub-type) labels, not the detector's coarse "sports ball"
    assert 37 not in set(ids)


@pytest.mark.parametrize("client", ["http", "grpc"], indirect=True)
def test_bad_requests_get_errors_and_the_server_keeps_serving(client, val_files):
    from tritonclient.utils import InferenceServerException

    module, client = client
    good = _images(val_files[:1])
    bad = {
        "wrong shape": (np.array([[val_files[0].read_bytes()]] * 2, dtype=object), "BYTES", "shape"),
        "wrong dtype": (np.zeros(8, np.float32), "FP32", "data-type|datatype|FP32"),
        "corrupt image bytes": (np.array([b"\xff\xd8\xff\xe0 this is not a jpeg"], dtype=object), "BYTES", "cannot read image"),
        "empty batch": (np.array([], dtype=object), "BYTES", "empty batch"),
        "too many images": (np.array([val_files[0].read_bytes()] * (MAX_IMAGES + 1), dtype=object), "BYTES", "limit is 4"),
        "image over the byte limit": (np.array([os.urandom(MAX_BYTES + 1)], dtype=object), "BYTES", f"limit is {MAX_BYTES}"),
    }
    for name, (data, dtype, message) in bad.items():
        with pytest.raises(InferenceServerException, match=message):
            _infer(module, client, data, dtype)
        assert len(_infer(module, client, good).as_numpy("SCORES")) > 0, f"no answer after the {name} request"
    assert client.is_server_live() and client.is_model_ready("cascade")


def _group(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def test_stopping_leaves_no_process(repository, val_files):
    require_side_env("serve")
    import tritonclient.http as th

    from mtnet.serve.server import TritonServer, free_port

    srv = TritonServer(repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    with srv:
        client = th.InferenceServerClient(srv.http_url)
        _infer(th, client, _images(val_files[:1]))
        client.close()
        running = _group(srv.proc.pid)
        assert srv.proc.pid in running and len(running) >= 6  # the server and one Python stub per model
    assert _group(srv.proc.pid) == []
    for pid in running:
        assert not Path(f"/proc/{pid}").exists()


def test_mtnet_serve_stops_on_sigterm_without_leftovers(repository):
    require_side_env("serve")
    """The CLI: serves until SIGTERM (or Ctrl-C), then no tritonserver or Python stub of it is left."""
    import signal
    import sys
    import time
    import urllib.request

    from mtnet.serve.server import free_port

    http = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mtnet", "serve", str(repository), f"--http-port={http}",
                             f"--grpc-port={free_port()}", f"--metrics-port={free_port()}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as r:
            assert r.status == 200
        servers = subprocess.run(["pgrep", "-f", "--", f"--http-port={http}"], capture_output=True, text=True).stdout.split()
        server_pid = next(int(p) for p in servers if int(p) != proc.pid and "tritonserver" in Path(f"/proc/{p}/cmdline").read_text())
        running = _group(server_pid)
        assert len(running) >= 6
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "server stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    assert _group(server_pid) == [] and not any(Path(f"/proc/{pid}").exists() for pid in running)


def test_onnxruntime_backend_repository_declares_the_onnx_models_for_tritons_ort_backend(cascade_run, tmp_path):
    """For NVIDIA's container: the same repository with the two ONNX models on Triton's ONNX Runtime backend."""
    from mtnet.export.triton import TritonExportError, TritonOptions, export_triton

    repo = export_triton(cascade_run["detector"], cascade_run["classifier"], tmp_path / "repo",
                         options=TritonOptions(onnx_backend="onnxruntime"))
    for model in ("detector", "classifier"):
        config = (repo / model / "config.pbtxt").read_text()
        assert 'platform: "onnxruntime_onnx"' in config and "backend:" not in config
        assert (repo / model / "1" / "model.onnx").is_file() and not (repo / model / "1" / "model.py").exists()
    assert 'backend: "python"' in (repo / "crop" / "config.pbtxt").read_text()
    with pytest.raises(TritonExportError, match="onnx_backend"):
        export_triton(cascade_run["detector"], cascade_run["classifier"], tmp_path / "bad", options=TritonOptions(onnx_backend="tensorrt"))
    assert not (tmp_path / "bad").exists()
