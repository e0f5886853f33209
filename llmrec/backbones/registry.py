"""Lazy string registry of backbones, with a hook for user plug-ins.

A new backbone is one file and one line here. Users register their own with
:func:`register_backbone` or through the ``llmrec.backbones`` entry-point group of their package.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from llmrec.config import from_dict
from llmrec.errors import ConfigError

_REGISTRY: dict[str, tuple[str, str] | type] = {
    "sasrec": ("llmrec.backbones.sasrec", "SASRec"),
    "ibim": ("llmrec.backbones.ibim", "IBIM"),
    "blade": ("llmrec.backbones.blade", "BLADE"),
    "dspnet": ("llmrec.backbones.dspnet", "DSPnet"),
    "mf": ("llmrec.backbones.mf", "MF"),
}
_entry_points_loaded = False


def register_backbone(name: str, target: type | str) -> None:
    """Register ``target`` (a Backbone subclass, or 'package.module:Class') under ``name``."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        if not attr:
            raise ConfigError(f"backbone target {target!r} must look like 'package.module:Class'")
        _REGISTRY[name] = (module, attr)
    else:
        _REGISTRY[name] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="llmrec.backbones"):
        _REGISTRY.setdefault(ep.name, tuple(ep.value.split(":", 1)))  # type: ignore[arg-type]


def list_backbones() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def get_backbone(name: str) -> type:
    """The backbone class registered under ``name`` (imported on first use)."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise ConfigError(f"backbone.name: unknown backbone {name!r}; known: {sorted(_REGISTRY)}")
    target = _REGISTRY[name]
    if isinstance(target, tuple):
        module, attr = target
        target = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = target
    return target


def name_of(cls: type) -> str:
    """The registry name of a backbone class."""
    _load_entry_points()
    for name, target in _REGISTRY.items():  # insertion order: built-in names win over aliases
        if target is cls or (isinstance(target, tuple) and target == (cls.__module__, cls.__name__)):
            return name
    raise ConfigError(f"{cls.__name__} is not registered; call register_backbone first")


def build_backbone(section: dict[str, Any], **sizes: int) -> Any:
    """Build the model of a config section ``{'name': ..., **fields}``.

    ``sizes`` (n_items, n_users, max_len, n_behaviors, n_scenes) come from the dataset and fill
    the config fields of the same names; a section value that disagrees is an error.
    """

    section = dict(section)
    name = section.pop("name", None)
    plugins = section.pop("plugins", None) or {}
    cls = get_backbone(name)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    for key, value in sizes.items():
        if key in fields:
            if key in section and section[key] not in (0, value):
                raise ConfigError(f"backbone.{key}={section[key]} but the data has {value}")
            section.setdefault(key, value)
    config = from_dict(cls.config_class, section, prefix="backbone")
    model = cls(config)
    if not isinstance(plugins, dict):
        raise ConfigError("backbone.plugins must map a plug-in name to its section, e.g. {mclmr: {}}")
    for plugin, plugin_section in plugins.items():
        if plugin not in PLUGINS:
            raise ConfigError(f"backbone.plugins: unknown plug-in {plugin!r}; known: {sorted(PLUGINS)}")
        module, attr = PLUGINS[plugin]
        model = getattr(importlib.import_module(module), attr)(model, plugin_section, sizes)
    return model


PLUGINS = {"mclmr": ("llmrec.backbones.plugins.mclmr", "wrap_mclmr")}
"""Plug-ins a backbone section can wear (``plugins: {name: section}``); each wraps the model."""


def backbone_config(section: dict[str, Any]) -> Any:
    """Resolve ``{'name': ..., **fields}`` into the registered model's config dataclass."""
    section = dict(section)
    name = section.pop("name", None)
    if not name:
        raise ConfigError("backbone.name is required")
    plugins = section.pop("plugins", None) or {}
    model_cls = get_backbone(name)
    config = from_dict(model_cls.config_class, section, prefix="backbone")
    if plugins:  # checked here so that a typo stops the run before any data is read
        if not isinstance(plugins, dict):
            raise ConfigError("backbone.plugins must map a plug-in name to its section, e.g. {mclmr: {}}")
        for plugin, plugin_section in plugins.items():
            if plugin not in PLUGINS:
                raise ConfigError(f"backbone.plugins: unknown plug-in {plugin!r}; known: {sorted(PLUGINS)}")
            module = importlib.import_module(PLUGINS[plugin][0])
            from_dict(module.CONFIG, dict(plugin_section or {}), prefix=f"backbone.plugins.{plugin}")
    return config
