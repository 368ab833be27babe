"""``kitmlflow watch``: a front end over the core, like ``cli/`` and ``tui/``, that keeps OCI registries in step
with MLflow's model registry as it happens.

MLflow's webhooks (``receiver``, checked by ``delivery``) put models on an on-disk queue (``queue``); the worker
(``worker``) runs the core's ``sync`` for each, and a reconcile loop queues every followed model at start and
every ``--reconcile-every``; ``service`` puts them together under a lock on the state folder. What is followed
comes from ``config``; ``metrics`` and ``log`` say what happened; ``registration`` creates the MLflow webhook.
"""
