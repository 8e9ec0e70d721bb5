"""Scoped hooks: one mechanism (`scoped.py`: torch forward hooks on a site's module, removed in
`finally`) serving reads (`capture.py`) and writes (`intervene.py`: add, replace, ablate, project
out, splice).

    from workbench.hooks import capture, intervene, Add
"""

from workbench.hooks.capture import Activations, capture
from workbench.hooks.intervene import (
    Add,
    Apply,
    Edit,
    MeanAblate,
    ProjectOut,
    Replace,
    Splice,
    ZeroAblate,
    intervene,
)

__all__ = [
    "Activations",
    "Add",
    "Apply",
    "Edit",
    "MeanAblate",
    "ProjectOut",
    "Replace",
    "Splice",
    "ZeroAblate",
    "capture",
    "intervene",
]
