"""``python -m mtnet.android_bench MODEL.tflite ... --benchmark-binary ./benchmark_model``."""

import sys

from .cli import main

sys.exit(main())
