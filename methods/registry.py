"""A strict name -> builder registry for few-shot segmentation methods.

Registering a name twice, or asking for a name that does not exist, is an error that lists the
known names (unlike timm's warn-and-overwrite).
"""
from __future__ import annotations

import fnmatch
from typing import Callable, Dict, List


class RegistryError(KeyError):
    """Unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry:
    """Maps names to builders; strict about duplicates and unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: `@METHODS.register("support-copy")` on a class or factory."""

        def decorate(builder: Callable) -> Callable:
            if name in self._builders:
                raise RegistryError(
                    f"{self.kind} '{name}' is already registered; known {self.kind}s: {', '.join(self.names())}"
                )
            self._builders[name] = builder
            return builder

        return decorate

    def get(self, name: str) -> Callable:
        try:
            return self._builders[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(self.names())}"
            ) from None

    def names(self, pattern: str = "*") -> List[str]:
        return sorted(n for n in self._builders if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def __len__(self) -> int:
        return len(self._builders)


METHODS = Registry("method")
register_method = METHODS.register


def build_method(name: str, **options):
    """Instantiate the registered method `name` with keyword options."""
    return METHODS.get(name)(**options)


def list_methods(pattern: str = "*") -> List[str]:
    return METHODS.names(pattern)
