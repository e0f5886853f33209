"""Wrappers any backbone can wear (semantic adapter; MCLMR later)."""
