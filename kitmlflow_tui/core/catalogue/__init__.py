"""Step 2 of the data flow: what MLflow knows about a run, and its artifact tree with sizes.

- :mod:`.records` — the values (frozen dataclasses; no MLflow import), used by every later step;
- :mod:`.gateway` — :class:`Catalogue`, the MLflow calls of one tracking server;
- :mod:`.listing` — the bounded, parallel listing of artifact trees;
- :mod:`.mlflow_errors` — MLflow failures mapped to the error family;
- :mod:`.pages` — paginated calls walked with bounds (a repeated token, a page count, a deadline);
- :mod:`.http_limits` — the retry policy and response limits put on MLflow's HTTP client.

Nothing here imports MLflow at import time. The values are imported from :mod:`.records`; this package
names the gateway and what the download step uses.
"""

from kitmlflow_tui.core.catalogue.gateway import Catalogue
from kitmlflow_tui.core.catalogue.http_limits import iter_body
from kitmlflow_tui.core.catalogue.mlflow_errors import translate_error
from kitmlflow_tui.core.catalogue.records import ArtifactFile

__all__ = ["ArtifactFile", "Catalogue", "iter_body", "translate_error"]
