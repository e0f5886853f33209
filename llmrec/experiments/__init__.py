"""Experiments built on llmrec's public API: ablation grids, ESIM calls-vs-quality curves, the
stage-2 comparison of explanation methods, seed pooling and report pages.

The library packages never import this package (a test walks the imports); CLI verbs such as
``llmrec ablate``, ``llmrec eval explanations`` and ``llmrec compare-llms`` import it lazily.
"""
