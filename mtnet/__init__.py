"""mtnet: one MobileNetV2 backbone and one neck for detection, segmentation and pose, built for phones.

Importing ``mtnet`` is light: heavy dependencies (onnx, tensorflow, coremltools) load lazily inside the
functions that need them.
"""

__version__ = "0.1.0"
