"""Methods from outside the package: installed plugins (entry points) and plugin files.

An installed distribution declares entry points in the group `fss_bench.methods`; each names a module
(importing it registers its methods with `@register_method`) or a callable (`module:function`, called
with no arguments, that registers them). A plugin file (`--plugin path/to/my_method.py`) is imported as
a module of its own. Each is loaded once per process, so that loading again (a Ray worker running many
tasks) is harmless; a plugin that fails to import or registers a name already taken is one
`PluginError` naming it. Standard library only: `methods` still imports nothing of `bench`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterable, List

from methods.registry import METHODS, MethodError

ENTRY_POINT_GROUP = "fss_bench.methods"

_loaded: Dict[str, Dict] = {}  # key ("file:<path>" or "entry point:<name>") -> its record
_entry_points_done = False


class PluginError(MethodError):
    """A plugin that could not be loaded (one line naming it)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _register(key: str, what: str, load) -> Dict:
    """Run `load()` and record which methods it registered; any failure is a PluginError naming `what`."""
    before = set(METHODS.names())
    try:
        load()
    except KeyboardInterrupt:  # Ctrl-C while it loads: the user's interrupt, not the plugin's failure
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin's own code: sys.exit(0) at import is a failure too
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"plugin {what} failed to load: {type(exc).__name__}: {reason}") from exc
    methods = sorted(set(METHODS.names()) - before)
    _loaded[key] = {"methods": methods}
    return _loaded[key]


def has_installed_plugins(group: str = ENTRY_POINT_GROUP) -> bool:
    """Whether a plugin is installed (an entry point of `group`) or already loaded in this process; nothing is
    imported (the listings read the light catalog when there is none)."""
    return bool(_loaded) or any(True for _ in metadata.entry_points(group=group))


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> List[Dict]:
    """Load every installed plugin of `group` (once per process); their records."""
    global _entry_points_done
    if not _entry_points_done:
        _entry_points_done = True
        for entry in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            key = f"entry point:{entry.name}"
            if key in _loaded:
                continue

            def load(entry=entry) -> None:
                target = entry.load()
                if not isinstance(target, ModuleType) and callable(target):
                    target()

            dist = getattr(entry, "dist", None)
            record = _register(key, f"{entry.name} ({entry.value})", load)
            record.update(entry_point=entry.name, value=entry.value,
                          distribution=f"{dist.name} {dist.version}" if dist is not None else None)
    return [r for k, r in _loaded.items() if k.startswith("entry point:")]


def load_plugin_file(path: str) -> Dict:
    """Import a plugin file as its own module (once per process and content); its record."""
    file = Path(path).expanduser()
    if file.suffix != ".py" or not file.is_file():
        raise PluginError(f"plugin {path}: not a Python file (give the path of a .py file)")
    file = file.resolve()
    sha256 = _sha256(file)
    key = f"file:{file}"
    if key in _loaded:
        if _loaded[key]["sha256"] != sha256:
            raise PluginError(f"plugin {path} changed since this process loaded it")
        return _loaded[key]
    module_name = f"fss_bench_plugin_{file.stem}_{sha256[:12]}"
    if any(r.get("module") == module_name for r in _loaded.values()):
        raise PluginError(f"plugin {path} has the same contents as a plugin already loaded: load it once")

    def load() -> None:
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look their module up here
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise

    record = _register(key, str(path), load)
    record.update(path=str(file), sha256=sha256, module=module_name)
    if not record["methods"]:
        raise PluginError(f"plugin {path} registered no method (decorate a class or factory with "
                          "@register_method)")
    return record


def load_plugins(files: Iterable[str] = ()) -> List[Dict]:
    """The installed plugins, then the plugin files, loaded (each once per process); the records of all
    plugins loaded so far, to keep with a run."""
    load_entry_points()
    for path in files or ():
        load_plugin_file(path)
    return loaded_plugins()


def loaded_plugins() -> List[Dict]:
    """Records of the plugins this process loaded: entry point or file (path, sha256), and their methods."""
    return [{k: v for k, v in record.items() if k != "module"} for record in _loaded.values()]
