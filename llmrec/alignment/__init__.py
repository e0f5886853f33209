"""BEAT stage 2: behaviour tokens aligned with a frozen LLM; explanations and their evaluation."""
