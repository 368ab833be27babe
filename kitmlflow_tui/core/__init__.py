"""The core: one package per step of the data flow (docs/architecture.md), shared by every front end.

reference → catalogue → selection → download → kitfile → packing → registry, sequenced by ``pipeline`` (one
import) and ``sync`` (a registered model's versions). Nothing here imports Textual or rich, prints, or reads a
terminal; the front ends (``kitmlflow_tui.cli``, ``kitmlflow_tui.tui``) build its inputs and render its events.
"""
