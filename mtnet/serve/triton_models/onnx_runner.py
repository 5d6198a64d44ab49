"""Triton model running an ONNX file (``model.onnx`` beside this file) with ONNX Runtime on CPU, for
servers without Triton's ONNX Runtime backend (the ``nvidia-pytriton`` wheel ships only the Python
backend). Inputs and outputs are the ONNX graph's, by name, as config.pbtxt declares them. A batch of
0 rows answers empty outputs (the graph may not accept it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend


class TritonPythonModel:
    def initialize(self, args):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = self.session.get_outputs()

    def _run(self, request):
        feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs}
        if any(len(v) == 0 for v in feeds.values()):
            return [np.zeros((0, *o.shape[1:]), np.float32) for o in self.outputs]
        return self.session.run([o.name for o in self.outputs], feeds)

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(o.name, np.ascontiguousarray(v))
                                            for o, v in zip(self.outputs, self._run(r), strict=True)])
                for r in requests]
