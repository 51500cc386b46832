"""Procedurally generated few-shot segmentation benchmark ("synthetic"), written in the PASCAL-5i layout.

The generator API lives in `bench.data.synthetic.generate` and is re-exported here lazily, so that
`python -m bench.data.synthetic.generate` does not import the module twice.
"""
from bench.data.synthetic.classes import CLASSES, SCENES, check_class_table, fold_classes

_GENERATE_API = (
    "CLASS_NAMES", "GENERATOR_VERSION", "TINY_SPEC", "SyntheticSpec", "default_cache_dir",
    "ensure_synthetic", "format_level", "synthetic_content_hash", "verify_synthetic",
)

__all__ = ["CLASSES", "SCENES", "check_class_table", "fold_classes", *_GENERATE_API]


def __getattr__(name):
    if name in _GENERATE_API:
        from . import generate
        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_GENERATE_API))
