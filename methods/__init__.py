"""Few-shot segmentation methods behind one interface, looked up by name in a strict registry.

Adding a method: write one file in this package that registers its card, and name it in BUILTIN below;
or keep it outside, as a plugin file or an installed plugin (`methods.plugins`). Importing this package is
light: the methods' modules (torch) are imported the first time a registry (METHODS, WEIGHTS) is read.
"""
import importlib

from methods.registry import (METHODS, MethodCard, MethodError, RegistryError, build_method, list_methods,
                              register_method)
from methods.weights import WEIGHTS

#: the built-in methods' modules, in registration order; each registers its cards (and weights) on import
BUILTIN = ("all_foreground", "canet", "simpropnet", "support_copy", "amp", "co_fcn", "fwb", "oslsm", "panet",
           "pfenet", "pgn", "sg_one", "hsnet", "dcama", "gf_sam", "matcher")
_loaded = False


def load_builtin() -> None:
    """Import every built-in method's module (once): the registries' loader."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        for name in BUILTIN:
            importlib.import_module(f"methods.{name}")
    except BaseException:
        _loaded = False
        raise


def builtin_loaded() -> bool:
    """Whether the built-in methods' modules are imported (then the live registries cost nothing more)."""
    return _loaded


METHODS.set_loader(load_builtin)
WEIGHTS.set_loader(load_builtin)


def __getattr__(name: str):
    """`FewShotSegmenter`, the interface, lives in `methods.base` (torch): imported when asked for."""
    if name == "FewShotSegmenter":
        return importlib.import_module("methods.base").FewShotSegmenter
    raise AttributeError(f"module 'methods' has no attribute {name!r}")


__all__ = ["BUILTIN", "FewShotSegmenter", "METHODS", "MethodCard", "MethodError", "RegistryError", "WEIGHTS",
           "build_method", "builtin_loaded", "list_methods", "load_builtin", "register_method"]
