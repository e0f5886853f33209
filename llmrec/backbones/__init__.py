"""Recommendation backbones behind one contract (:class:`Backbone`) and a lazy registry."""

from llmrec.backbones.registry import build_backbone, get_backbone, list_backbones, register_backbone

__all__ = ["build_backbone", "get_backbone", "list_backbones", "register_backbone"]
