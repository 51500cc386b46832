"""The analyses, declared once: each is a command `python -m analyses.<name>` (the light module
analyses/<name>.py; its implementation analyses/impl/<name>.py) with the title of its section in
`bench report` (None: not shown there).

Read by `python -m bench --help` (its epilog lists the commands) and by `bench report` (a run's
analyses/<name>* folders, in this order). A leaf of the layers: it imports nothing, so the report and the
light command line read it without the analyses' dependencies (tests/test_layers.py); tests/test_cli_options.py
checks that it names exactly the command modules of analyses/.
"""
from __future__ import annotations

from typing import Dict, Optional

#: name -> the title of its report section, in the report's order (the paper's figures and tables first)
ANALYSES: Dict[str, Optional[str]] = {
    "similarity": "FG vs BG similarity (Figure 3)",
    "tsne": "tSNE of MAP vectors (Figure 6)",
    "error_regions": "Error-region similarity (Section 3.1)",
    "error_overlap": "Error overlap (Table 1)",
    "identical": "Identical input (Tables 2 and 6)",
    "protocol": "Protocol sensitivity",
    "context": "FBAF gain vs background context (Figure 3's premise)",
    "base_novel": "Base vs novel classes (a trained checkpoint's class-specific learning)",
    "pipeline_gap": None,  # its --out holds two run directories of its own, compared by its table
}


def report_sections() -> Dict[str, str]:
    """name -> title of the analyses `bench report` shows, in its order."""
    return {name: title for name, title in ANALYSES.items() if title is not None}
