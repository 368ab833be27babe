"""The command line: browse (default), import, download, sync, watch, verify, login, logout, profiles, demo.

One module per command family, over the group (:mod:`.app`), the options they share (:mod:`.options`)
and what they print (:mod:`.output`: text, the ``--json`` document, errors mapped to exit codes). Each
command parses its options and makes one call into the core. Heavy imports (mlflow, textual) happen
inside the commands, so ``kitmlflow --help`` stays instant.
"""

from kitmlflow_tui.cli.app import cli, main

# Each module registers its commands on ``cli`` when imported.
from kitmlflow_tui.cli.browse import browse, demo
from kitmlflow_tui.cli.importing import download, import_command
from kitmlflow_tui.cli.login import login, logout
from kitmlflow_tui.cli.profiles import profiles
from kitmlflow_tui.cli.sync import sync
from kitmlflow_tui.cli.verify import verify
from kitmlflow_tui.cli.watch import watch

__all__ = [
    "browse",
    "cli",
    "demo",
    "download",
    "import_command",
    "login",
    "logout",
    "main",
    "profiles",
    "sync",
    "watch",
    "verify",
]
