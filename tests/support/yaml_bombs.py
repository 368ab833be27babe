"""Hostile YAML documents for the bounded loader's tests."""

from __future__ import annotations


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic: each level is ``width`` aliases of the one before, ``width ** levels`` strings in all."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"
