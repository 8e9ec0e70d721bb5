"""The on-disk activation store: one directory per (model, checkpoint, dataset, capture spec).

    w = StoreWriter(path, spec)            # resumes an interrupted capture of the same spec
    for batch in data[w.resume_point:]:
        w.append({site: acts}, token_ids, example_index, position)
    store = w.finalize()                    # ActivationStore
    store.read(site, rows), store.iter_batches(site, 4096, shuffle=True), store.stats(site)

Layout and manifest: ``manifest.py``; crash safety: ``writer.py``; statistics: ``stats.py``.
"""

from workbench.store.listing import list_stores
from workbench.store.manifest import SCHEMA_VERSION
from workbench.store.reader import ActivationStore
from workbench.store.stats import RunningStats
from workbench.store.writer import StoreWriter

__all__ = ["SCHEMA_VERSION", "ActivationStore", "RunningStats", "StoreWriter", "list_stores"]
