"""Which task a config names: the registered tasks, ``"package.module:ClassName"`` and ``"path/to/file.py:ClassName"``.

Registered tasks are found by name in :mod:`ktorch_sim.tasks` (their config classes without
importing torch or MuJoCo); any other task is imported here, and a user's module that fails to
import becomes one :class:`ConfigError` line naming its file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from ktorch_sim.errors import ConfigError
from ktorch_sim.task_config import RLConfig
from ktorch_sim.tasks import TASK_NAMES, task_class, task_config_class
from ktorch_sim.utils.toml_values import show_value

if typing.TYPE_CHECKING:
    from ktorch_sim.task import RLTask


def registered_tasks() -> dict[str, tuple[type[RLTask], type[RLConfig]]]:
    """Return the shipped tasks by name (``ktorch_sim.tasks.TASKS``; imports every task module)."""

    return {name: (task_class(name), task_config_class(name)) for name in TASK_NAMES}


def registered_task_names() -> tuple[str, ...]:
    """Return the shipped tasks' names, sorted (imports no task module)."""

    return tuple(sorted(TASK_NAMES))


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"


_MODULE_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")


_CLASS_RE = _MODULE_RE


def _check_import_path(name: str) -> None:
    """Refuse a ``task.name`` with a ':' that is not ``module:Class`` or ``file.py:Class`` (e.g. ":", "a:", ":B")."""
    module, _, attr = name.rpartition(":")
    module_ok = module.endswith(".py") and len(module) > 3 or _MODULE_RE.fullmatch(module) is not None
    if module_ok and _CLASS_RE.fullmatch(attr):
        return
    part = "module or file" if not module_ok else "class name"
    raise ConfigError(f"malformed task name {show_value(name)} (bad {part}); expected a registered name "
                      f"({', '.join(registered_task_names())}), \"package.module:ClassName\" or "
                      '"path/to/file.py:ClassName"', key="task.name")


def _unknown_task(name: str) -> ConfigError:
    names = registered_task_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return ConfigError(f"unknown task {show_value(name)}; {hint}registered tasks: {', '.join(names)} "
                       '(or "package.module:ClassName" of an RLTask subclass, or "path/to/file.py:ClassName")',
                       key="task.name")


def resolve_task(name: str) -> tuple[type[RLTask], type[RLConfig]]:
    """Find the task class and its config class for a registered name or ``"package.module:ClassName"``.

    ``"path/to/file.py:ClassName"`` loads the file (relative to the current directory, with its
    directory importable, as when it ran as a script; its ``if __name__ == "__main__"`` block does
    not run). A module path is imported from ``sys.path`` and, failing that, the current directory.
    For an import path the config class is the task class's ``config_class`` attribute, else
    the annotation of its ``__init__``'s ``config`` parameter, else X in its ``RLTask[X]`` base.
    Raises :class:`ConfigError` (key ``task.name``) listing the registered names otherwise, and
    one line naming the file and line when the user's module fails to import.
    """

    if name in TASK_NAMES:
        return task_class(name), task_config_class(name)
    if ":" not in name:
        raise _unknown_task(name)
    _check_import_path(name)
    task_cls = _import_task_class(name)
    return task_cls, _task_config_class(task_cls, name)


def resolve_task_config(name: str) -> type[RLConfig]:
    """Return the config class of ``task.name``: for a registered task without importing its task class.

    The config loader uses this, so that checking a config of a shipped task imports neither torch
    nor MuJoCo. An import path (``"package.module:ClassName"``) must import the user's module to find it.
    """

    if name in TASK_NAMES:
        return task_config_class(name)
    return resolve_task(name)[1]


def _import_task_class(path: str) -> type[RLTask]:
    from ktorch_sim.task import RLTask

    module_name, _, attr = path.rpartition(":")  # rpartition: a file path may hold a drive letter's ':'
    if module_name.endswith(".py"):
        module = _load_task_file(module_name, path)
    else:
        module = _import_task_module(module_name, path)
    task_cls: Any = module
    for part in attr.split("."):  # a nested class: Outer.Inner
        task_cls = getattr(task_cls, part, None)
    if not (isinstance(task_cls, type) and issubclass(task_cls, RLTask)):
        what = "has no attribute" if task_cls is None else "is not an RLTask subclass:"
        raise ConfigError(f"module {module_name} {what} {show_value(attr)}", key="task.name")
    return task_cls


def _import_task_module(module_name: str, path: str) -> types.ModuleType:
    """Import ``module_name``; when it is not on ``sys.path``, try again from the current directory.

    ``python tools/play.py`` puts ``tools/`` on ``sys.path``, not the directory it runs from, so
    without the second try a task module next to the user's run directory would not be found.
    Anything the module raises while it runs (a SyntaxError, a NameError, an ImportError of one of
    its own imports ...) becomes one :class:`ConfigError` line naming the file and line.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if not _is_module_itself(e, module_name):
            raise _module_failed(e, module_name, path) from None
        problem: BaseException = e
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as again:
                if not _is_module_itself(again, module_name):
                    raise _module_failed(again, module_name, path) from None
                problem = again
            except Exception as again:  # noqa: BLE001 - the user's module failed while it ran
                raise _module_failed(again, module_name, path) from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while it ran
        raise _module_failed(e, module_name, path) from None
    raise ConfigError(f"cannot import module {show_value(module_name)} of task {show_value(path)}: {problem}; expected a "
                      "module importable from the current directory or PYTHONPATH", key="task.name") from None


def _is_module_itself(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``error`` says that ``module_name`` (or a package above it) is missing, not one of its imports."""
    missing = error.name or ""
    return missing == module_name or module_name.startswith(missing + ".")


def _module_failed(error: BaseException, module_name: str, path: str) -> ConfigError:
    where = _error_location(error)
    return ConfigError(f"task module {show_value(module_name)} of task {show_value(path)} failed to import: "
                       f"{where}{_one_line_error(error)}", key="task.name")


def _one_line_error(error: BaseException) -> str:
    """``Type: message`` on one line (a SyntaxError without its "(file, line n)" suffix)."""
    text = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _error_location(error: BaseException) -> str:
    """``"file.py, line n: "``: where the user's code failed (the deepest frame outside Python and ktorch_sim).

    A SyntaxError names its own file and line. Otherwise the traceback's last frame in a file that is
    not part of the standard library, the installed packages or ktorch_sim is the user's line; failing
    that, the deepest frame with a file. Paths below the current directory are shown relative to it.
    """
    if isinstance(error, SyntaxError) and error.filename:
        return f"{_shown_path(error.filename)}, line {error.lineno}: "
    import sysconfig
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename and not f.filename.startswith("<")]
    if not frames:
        return ""
    skip = {str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))}
    skip.add(str(Path(__file__).resolve().parent))
    user = [f for f in frames if not any(str(Path(f.filename).resolve()).startswith(d + os.sep) for d in skip)]
    frame = (user or frames)[-1]
    return f"{_shown_path(frame.filename)}, line {frame.lineno}: "


def _shown_path(file: str) -> str:
    resolved = Path(file).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _load_task_file(file: str, path: str) -> types.ModuleType:
    """Load the Python file of a ``path/to/file.py:ClassName`` task once per process, as its own module.

    The file runs under a private module name (not ``__main__``, so a ``launch`` guarded by
    ``if __name__ == "__main__"`` does not start), with its directory on ``sys.path`` so its own
    imports of neighbouring files work as they did when it ran as a script.
    """
    resolved = Path(file).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"task file {show_value(file)} of task {show_value(path)} does not exist (relative to {os.getcwd()}); "
                          "run from the directory it was recorded from, or --set task.name=path/to/file.py:ClassName",
                          key="task.name")
    name = f"_ktorch_sim_task_{resolved.stem}_{hashlib.sha1(str(resolved).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    if str(resolved.parent) not in sys.path:
        sys.path.append(str(resolved.parent))
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - anything the user's file raises becomes one line
        del sys.modules[name]
        raise ConfigError(f"cannot load task file {show_value(file)} of task {show_value(path)}: {_error_location(e)}"
                          f"{_one_line_error(e)}", key="task.name") from None
    return module


def importable_task_name(task_cls: type) -> str | None:
    """Return the ``task.name`` that :func:`resolve_task` maps back to ``task_cls``, or None when none exists.

    A class of an importable module is ``package.module:ClassName``. A class defined in the script
    being run (module ``__main__``) is named by how the script can be found again: its module name
    when it ran as ``python -m package.module``, else its file, relative to the current directory
    when it lies below it (``my_tasks/walk.py:MyTask``) and absolute otherwise. A class from an
    interactive session or notebook (no file), or one defined inside a function, has none.
    """
    qualname = task_cls.__qualname__
    if "<locals>" in qualname:
        return None
    if task_cls.__module__ != "__main__":
        return f"{task_cls.__module__}:{qualname}"
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return f"{spec.name}:{qualname}"
    file = getattr(main, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return None
    resolved = Path(file).resolve()
    try:
        shown = resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = str(resolved)
    return f"{shown}:{qualname}"


def _task_config_class(task_cls: type[RLTask], name: str) -> type[RLConfig]:
    candidates: list[Any] = [getattr(task_cls, "config_class", None)]
    try:
        candidates.append(typing.get_type_hints(task_cls.__init__).get("config"))
    except Exception:  # noqa: BLE001 - unresolvable annotations just mean "look elsewhere"
        pass
    for klass in task_cls.__mro__:
        candidates += [arg for base in getattr(klass, "__orig_bases__", ()) for arg in typing.get_args(base)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, RLConfig) and dataclasses.is_dataclass(c):
            if "name" in {f.name for f in dataclasses.fields(c)}:
                raise ConfigError(f"{c.__name__} has a field 'name', which clashes with task.name; rename it",
                                  key="task.name")
            return c
    raise ConfigError(f"cannot find the config class of {name}: set `config_class = <an RLConfig dataclass>` on "
                      "the task class or annotate its __init__'s config parameter", key="task.name")
