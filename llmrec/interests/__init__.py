"""ESIM: user texts, Affinity Propagation, LLM interests for representatives, propagation."""
