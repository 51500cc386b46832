"""Refuse to run on someone else's `methods`: a user's `methods/` folder (or `methods.py`) in the working
directory comes first on `sys.path` under `python -m` and would replace the harness's package."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Optional

#: where the harness's own `methods` package is: beside `bench`, installed or checked out
OURS = Path(__file__).resolve().parents[2] / "methods"


def _location(origin: Optional[str], search: Optional[list]) -> Optional[Path]:
    if origin and origin not in ("namespace", "built-in", "frozen"):
        path = Path(origin)
        return path.parent if path.name == "__init__.py" else path
    return Path(list(search)[0]) if search else None


def methods_shadowed() -> Optional[str]:
    """What `import methods` resolves to when it is not the harness's package (None when it is)."""
    module = sys.modules.get("methods")
    if module is not None:
        found = _location(getattr(module, "__file__", None), getattr(module, "__path__", None))
    else:
        spec = importlib.util.find_spec("methods")
        found = None if spec is None else _location(spec.origin, spec.submodule_search_locations)
    if found is not None and found.resolve() == OURS:
        return None
    return str(found) if found is not None else "nothing"


def refuse_shadowed_methods() -> None:
    """One `error:` line and exit status 2 when `methods` is not the harness's own package."""
    found = methods_shadowed()
    if found is not None:
        print(f"error: `import methods` finds {found}, not fss-bench's methods package ({OURS}): a folder or "
              "file named `methods` in the working directory hides it; rename yours (e.g. my_methods) or run "
              "from another directory, and load your methods with --plugin FILE", file=sys.stderr)
        raise SystemExit(2)
