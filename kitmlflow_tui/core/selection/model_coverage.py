"""What a plan leaves out of the models MLflow knows about (its logged models, and MLflow 2 model folders).

A size cap or an exclude can drop the only weights of a model without a word, and the ModelKit then quietly holds
no model (kit's guess may even make a checkpoint "the model"). The plan already says why each file is left out;
this says what that means for each model, so that the front ends can warn, and refuse with ``--yes``
(:func:`require_a_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kitmlflow_tui.core.catalogue.records import LoggedModelInfo
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.plan import LeftOut, Plan

SHOWN_FILES = 3  # left-out files a message names, per model


@dataclass(frozen=True)
class ModelLoss:
    """One model the plan does not take whole: the files of it that are left out, and how many it has."""

    model: LoggedModelInfo
    left_out: tuple[LeftOut, ...]
    files: int

    @property
    def whole(self) -> bool:
        return len(self.left_out) == self.files

    def describe(self) -> str:
        folder = f"{self.model.folder}/" if self.model.folder else "the run's root"
        shown = "; ".join(f"{o.file.path}: {o.reason}" for o in self.left_out[:SHOWN_FILES])
        more = f"; and {len(self.left_out) - SHOWN_FILES} more" if len(self.left_out) > SHOWN_FILES else ""
        if self.whole:
            return f"every file of the model {self.model.name} ({folder}) is left out ({shown}{more})"
        return (
            f"{len(self.left_out)} of the {self.files} files of the model {self.model.name} ({folder}) are left out "
            f"({shown}{more}): it may not load"
        )


@dataclass(frozen=True)
class ModelCoverage:
    models: int  # how many models MLflow knows in the tree
    losses: tuple[ModelLoss, ...]

    @property
    def no_model(self) -> bool:
        """MLflow knows of a model, and the plan takes none of it: the ModelKit would hold no MLflow model."""
        return self.models > 0 and sum(1 for loss in self.losses if loss.whole) == self.models

    def warnings(self) -> list[str]:
        if self.no_model:
            return [f"The ModelKit would hold no model: {loss.describe()}." for loss in self.losses]
        return [f"The filters leave out part of a model: {loss.describe()}." for loss in self.losses]


def _belongs(path: str, model: LoggedModelInfo) -> bool:
    return not model.folder or path == model.folder or path.startswith(model.folder + "/")


def model_coverage(plan: Plan) -> ModelCoverage:
    """For each model of the plan's tree, the files of it the plan leaves out (models it takes whole are not listed)."""
    models = plan.tree.logged_models
    losses = []
    for model in models:
        files = sum(1 for f in plan.tree.files if _belongs(f.path, model))
        left_out = tuple(o for o in plan.left_out if _belongs(o.file.path, model))
        if files and left_out:
            losses.append(ModelLoss(model, left_out, files))
    return ModelCoverage(sum(1 for m in models if any(_belongs(f.path, m) for f in plan.tree.files)), tuple(losses))


def require_a_model(coverage: ModelCoverage) -> None:
    """Refuse (exit 2) a plan that leaves out every model MLflow knows about: for ``--yes`` without
    ``--allow-no-model``, where nobody reads a warning before the ModelKit is pushed."""
    if coverage.no_model:
        raise BadInputError(
            " ".join(coverage.warnings()),
            hint="Take the model's files (a larger --max-file-size, another --include or --exclude), "
            "or add --allow-no-model to import the other files without it.",
        )
