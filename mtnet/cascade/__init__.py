"""Detector -> crop-classifier cascade: fine-grained labels the on-device detector cannot tell apart.

``model`` (the MobileNetV2 crop classifier), ``crops`` and ``relabel`` (NumPy, shared with the Triton
steps), ``crop_set`` + ``train`` (training on ground-truth crops and the detector's own detections),
``backends`` (PyTorch / ONNX Runtime / LiteRT), ``predictor.Cascade`` (``Predictor``'s API),
``evaluate`` (fine-grained AP, interleaved latency), ``export`` (ONNX, TFLite fp32 / int8, report).

Why not a task of the registry (``mtnet.tasks``): a task is a head on the shared neck of one network
that sees the whole letterboxed image; the classifier is a second network with its own input (crops of
the original image at their own resolution), its own data (detections, hard negatives) and its own
training loop. Modules here import nothing heavy at package import: the Triton steps import
``crops`` / ``relabel`` in an environment without torch.
"""
