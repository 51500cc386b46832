"""Few-shot segmentation methods behind one interface, looked up by name in a strict registry.

Adding a method: write one file in this package that registers its card, and import it below; or keep
it outside, as a plugin file or an installed plugin (`methods.plugins`).
"""
from methods.base import FewShotSegmenter
from methods.registry import (METHODS, MethodCard, MethodError, RegistryError, build_method, list_methods,
                              register_method)

from methods import all_foreground, canet, simpropnet, support_copy  # noqa: F401, I001  (registration)
from methods import amp, co_fcn, fwb, oslsm, panet, pfenet, pgn, sg_one  # noqa: F401, I001
from methods import hsnet  # noqa: F401, I001

__all__ = ["FewShotSegmenter", "METHODS", "MethodCard", "MethodError", "RegistryError", "build_method", "list_methods",
           "register_method"]
