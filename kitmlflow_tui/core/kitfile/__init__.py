"""Step 5 of the data flow: the Kitfile of a downloaded folder.

- :mod:`.model` — the Kitfile as typed values (its sections: ``Package``, ``Model``, ``ModelPart``,
  ``CodeEntry``, ``DatasetEntry``, ``DocsEntry``, ``PromptEntry``) (frozen dataclasses in kit's key order) and the one
  validator that reads a mapping into them and applies kit's checks;
- :mod:`.classify` — what ``kit init`` writes for the folder, rule for rule (and which files
  ``kit pack`` would drop);
- :mod:`.license` — the SPDX id of a license file, as kit init detects it;
- :mod:`.enrich` — kit's guess corrected with what MLflow knows, the package filled in, provenance;
- :mod:`.coverage` — which files a Kitfile leaves out of every layer (kit's layer rules over paths);
- :mod:`.goyaml` — go-yaml v3's scalar rules (how kit types a scalar, when a string may be written plain);
- :mod:`.yaml_io` — Kitfile YAML in kit's style, and strict parsing with a line for every problem.
"""

from kitmlflow_tui.core.kitfile.classify import (
    KIT_INIT_COMMIT,
    KIT_INIT_VERSION,
    KITFILE_NAMES,
    classify_like_kit_init,
    dropped_by_kit,
)
from kitmlflow_tui.core.kitfile.coverage import files_in_no_layer
from kitmlflow_tui.core.kitfile.enrich import (
    MLFLOW_MODEL_PART_TYPE,
    PROVENANCE_FILE,
    BuiltKitfile,
    KitfileOverrides,
    build_kitfile,
    write_provenance_file,
)
from kitmlflow_tui.core.kitfile.license import detect_license_id
from kitmlflow_tui.core.kitfile.model import (
    MANIFEST_VERSION,
    Kitfile,
    canonical_kitfile,
    validate_kitfile,
)
from kitmlflow_tui.core.kitfile.yaml_io import dump_kitfile, dump_yaml, load_kitfile_text

__all__ = [
    "KITFILE_NAMES",
    "KIT_INIT_COMMIT",
    "KIT_INIT_VERSION",
    "MANIFEST_VERSION",
    "MLFLOW_MODEL_PART_TYPE",
    "PROVENANCE_FILE",
    "BuiltKitfile",
    "Kitfile",
    "KitfileOverrides",
    "build_kitfile",
    "canonical_kitfile",
    "classify_like_kit_init",
    "detect_license_id",
    "dropped_by_kit",
    "dump_kitfile",
    "dump_yaml",
    "files_in_no_layer",
    "load_kitfile_text",
    "validate_kitfile",
    "write_provenance_file",
]
