"""Export a trained mtnet checkpoint to ONNX, TFLite (fp32 / fp16 / int8) and CoreML, and check every artifact.

Entry point: :func:`export.pipeline.export_checkpoint` (``mtnet export``). Heavy dependencies (onnx,
TensorFlow via onnx2tf, coremltools, LiteRT) are imported inside the functions that need them.
"""
