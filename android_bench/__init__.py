"""Profile exported .tflite models on Android phones over adb with TFLite's official benchmark tool.

``adb`` (the real client via subprocess), ``facts`` (device facts), ``runner`` (sweeps, push-once,
resume), ``parse`` (benchmark_model / APK logcat output), ``cli``. Results use ``mtnet.bench.schema``
and ``mtnet.bench.report`` so phone and host rows share one format and one set of plots.
"""
