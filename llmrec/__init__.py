"""llmrec: LLM-centric explainable recommendation."""

__version__ = "0.1.0"
