"""Serving: LLM-free recommendations over HTTP (``llmrec serve``)."""
