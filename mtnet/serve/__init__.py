"""Serving the detector -> crop-classifier cascade with NVIDIA Triton Inference Server.

``mtnet export --formats triton`` writes the model repository (``mtnet.export.triton``); ``mtnet serve``
runs it with a real ``tritonserver`` (``server``) from a separate environment (``env``): the
``nvidia-pytriton`` wheel that ships the binary pins numpy < 2, mtnet's environment uses numpy 2.
``triton_models`` holds the Python-backend models the repository runs (copied into it as ``model.py``).
"""
