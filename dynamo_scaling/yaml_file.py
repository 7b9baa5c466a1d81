"""A YAML (or JSON) file whose top level must be a mapping: the planner's config, the signal
mapping, the what-if's view of the planner's config. Errors name the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import yaml


class YamlFileError(ValueError):
    pass


def read_mapping(path: Path) -> dict:
    """The file's top-level mapping ({} for an empty file)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise YamlFileError(f"{path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise YamlFileError(f"{path}: expected a mapping at the top level")
    return data
