"""kitmlflow: turn a finished MLflow run into a KitOps ModelKit."""

__version__ = "0.1.0"
