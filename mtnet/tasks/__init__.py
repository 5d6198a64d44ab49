"""Task plug-ins and their registry (torchvision-style: ``register_task``, ``get_task``, ``list_tasks``).

A task is one module here (``detection``, ``pose``, ``segmentation``) holding a ``Task`` subclass; adding
one is that module plus a ``register_task`` call (see docs/architecture.md, "Adding a task"). Registry
order is graph order: deploy outputs, losses and logs follow it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import (
    CocoResultsEvaluator,
    DecodeOptions,
    Features,
    HeadSpec,
    OutputDef,
    Task,
    TaskEvaluator,
    TaskSet,
)

_REGISTRY: dict[str, Task] = {}


def register_task(task: type[Task] | Task) -> type[Task] | Task:
    """Register a task class (usable as a decorator) or instance under its ``name``; built-ins come first."""
    _load_builtins()
    obj = task() if isinstance(task, type) else task
    name = getattr(obj, "name", "")
    if not name or not name.isidentifier():
        raise ValueError(f"a task needs an identifier `name`, got {name!r}")
    if name in _REGISTRY and type(_REGISTRY[name]) is not type(obj):
        raise ValueError(f"task {name!r} is already registered by {type(_REGISTRY[name]).__qualname__}")
    _REGISTRY[name] = obj
    return task


def unregister_task(name: str) -> None:
    """Remove a task (tests and notebooks that define their own)."""
    _REGISTRY.pop(name, None)


def list_tasks() -> list[str]:
    """Names of the registered tasks in registry order."""
    _load_builtins()
    return list(_REGISTRY)


def get_task(name: str) -> Task:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def resolve_tasks(names: Iterable[str]) -> TaskSet:
    """The enabled tasks in registry order; raises ValueError on an unknown task or a missing dependency."""
    wanted = list(names)
    for n in wanted:
        get_task(n)
    for n in wanted:
        missing = [r for r in get_task(n).requires if r not in wanted]
        if missing:
            raise ValueError(f"the {n} task needs {', '.join(missing)}: enable {', '.join(repr(m) for m in missing)} too")
    return TaskSet([t for name, t in _REGISTRY.items() if name in wanted])


def _collect(attr: str, names: Iterable[str] | None) -> list[str]:
    tasks = resolve_tasks(names).tasks if names is not None else [get_task(n) for n in list_tasks()]
    out: list[str] = []
    for t in tasks:
        value = getattr(t, attr)
        for key in (value,) if isinstance(value, str) else (value or ()):
            if key not in out:
                out.append(key)
    return out


def metric_keys(names: Iterable[str] | None = None) -> list[str]:
    """Headline metrics of the given tasks (default: every registered task), in registry order."""
    return _collect("metric_keys", names)


def gated_metrics(names: Iterable[str] | None = None) -> list[str]:
    """The metric of each task that an export's accuracy-drop budget gates."""
    return _collect("gated_metric", names)


def fitness_metrics(names: Iterable[str] | None = None) -> list[str]:
    """The metric of each task averaged into the checkpoint-selection fitness."""
    return _collect("fitness_metric", names)


def loss_log_keys(names: Iterable[str] | None = None) -> list[str]:
    """Per-step loss values the tasks log (metrics.csv columns, training curves)."""
    return _collect("loss_logs", names)


def diagnostic_log_keys(names: Iterable[str] | None = None) -> list[str]:
    """Other per-step values the tasks log (metrics.csv columns)."""
    return _collect("diagnostic_logs", names)


def summary_rows(names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(label, key) rows of the terminal metrics table."""
    tasks = resolve_tasks(names).tasks if names is not None else [get_task(n) for n in list_tasks()]
    return [row for t in tasks for row in t.summary_rows]


_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from . import detection, instance, pose, segmentation  # noqa: F401  (each registers itself)


__all__ = ["CocoResultsEvaluator", "DecodeOptions", "Features", "HeadSpec", "OutputDef", "Task", "TaskEvaluator", "TaskSet",
           "diagnostic_log_keys", "fitness_metrics", "gated_metrics", "get_task", "list_tasks", "loss_log_keys", "metric_keys",
           "register_task", "resolve_tasks", "summary_rows", "unregister_task"]
