"""LLM runtime: offline catalogue, one backend interface (HF transformers, vLLM), prompt
templates and assembly with soft tokens, and the resumable batch-job runner."""
