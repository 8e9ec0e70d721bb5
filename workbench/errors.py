"""Exception types of the workbench.

Every error names the bad value and, where there is a finite set, the valid choices, so that a
user can correct the call without reading the source.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class UnknownModelError(WorkbenchError):
    """A model spec that no loader could resolve; the message lists what was tried."""


class MissingExtraError(UnknownModelError):
    """A model (or feature) whose package is not installed; the message names the pip extra
    that adds it. `package` and `extra` say which, for callers that skip the work instead."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(
            f"{what} needs the package {package}, which is not installed; add it with "
            f"pip install 'interp-workbench[{extra}]'"
        )
        self.package = package
        self.extra = extra


class UnknownSiteError(WorkbenchError, KeyError):
    """A site name or pattern that does not exist on the model."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InputError(WorkbenchError, ValueError):
    """Inputs of the wrong shape, dtype or kind for the model or the call."""


class NonFiniteActivationError(WorkbenchError, FloatingPointError):
    """NaN or Inf in a captured activation; the message names the site and the position."""


class UnsafeCheckpointError(WorkbenchError):
    """A checkpoint that could only be read by unpickling arbitrary code."""


class StoreError(WorkbenchError):
    """Base class of activation-store errors."""


class StoreSpecMismatchError(StoreError):
    """A store directory already holds a capture with a different spec."""


class StoreIncompleteError(StoreError):
    """A store whose capture did not finish (it can be resumed by re-running the capture)."""


class StoreCorruptError(StoreError):
    """A shard whose size or checksum does not match the manifest."""


class StoreWriteError(StoreError, OSError):
    """Writing a store failed (for example a full disk); nothing half-written is marked complete."""


def closest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The up-to-`n` entries of `choices` closest to `name` (difflib ratio), best first."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not found:
        # Fall back to a shared prefix so that something useful is always suggested.
        prefix = name.split(".")[0]
        found = [c for c in choices if c.startswith(prefix)][:n] or choices[:n]
    return found
