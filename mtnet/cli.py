"""``mtnet`` command line: parses arguments and calls library functions, nothing more.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; the
registry below imports a module only when its command runs (or for ``--help``), so heavy dependencies
(TensorFlow, coremltools, adb) never load for the commands that do not need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

from .errors import MtnetWarning, UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("mtnet.commands.quickstart", "generate synthetic data, train all three tasks on CPU, evaluate, draw"),
    "train": ("mtnet.commands.train", "train from a YAML config (key.sub=value overrides)"),
    "lr-find": ("mtnet.commands.lr_find", "LR range test: plot loss vs LR and suggest the peak LR"),
    "eval": ("mtnet.commands.evaluate", "evaluate a checkpoint or exported model on a COCO-format split"),
    "predict": ("mtnet.commands.predict", "run a model on images and draw the results"),
    "export": ("mtnet.commands.export", "export a checkpoint to ONNX / TFLite (fp32, fp16, int8) / CoreML, with checks"),
    "qat": ("mtnet.commands.qat", "quantisation-aware fine-tuning of a checkpoint for int8 TFLite (export --quant qat)"),
    "bench": ("mtnet.commands.bench", "host latency of .tflite files with LiteRT (JSON/CSV + plots)"),
    "bench-android": ("mtnet.commands.bench_android", "profile .tflite files on Android phones over adb"),
    "data": ("mtnet.commands.data", "data set tools: `data check` lists every problem, `data stats` counts and plots"),
    "cascade": ("mtnet.commands.cascade", "detector -> crop classifier cascade: `cascade train`, `cascade export`"),
    "serve": ("mtnet.commands.serve", "run a Triton model repository (mtnet export --formats triton) with tritonserver"),
    "envs": ("mtnet.commands.envs", "side environments with their own pins (Triton serving, tflite-support): list, install"),
}


def _error(message: str) -> int:
    print(f"mtnet: error: {message}", file=sys.stderr)
    return 2


def _one_line_warnings(previous: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing mtnet's own warnings as one line (no source path and code line, which
    point into mtnet rather than at the user's input); other libraries' warnings go to ``previous``."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, MtnetWarning):
            print(f"mtnet: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtnet", description="One backbone, three tasks, on device.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command in (name, None) and command is not None:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        parser = build_parser()
        if command is not None:
            parser.print_usage(sys.stderr)
            return _error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
        parser.print_help()
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(COMMANDS[command][0])
    try:
        with warnings.catch_warnings():  # restores the caller's warning display on return
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(module.run(args) or 0)
    except UserError as e:  # bad input: one clear line, no traceback
        return _error(str(e))
    except KeyboardInterrupt:
        return _error("interrupted")


if __name__ == "__main__":
    sys.exit(main())
