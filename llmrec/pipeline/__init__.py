"""``llmrec pipeline``: the whole system as one resumable, cached run (data -> backbone -> BEAT stage 1
-> ESIM interests -> the backbone retrained with the semantic signals -> teacher references where
the data has no texts -> stage 2 -> explained recommendations -> one report)."""

from llmrec.pipeline.config import PipelineConfig
from llmrec.pipeline.run import load_pipeline_config, run_pipeline

__all__ = ["PipelineConfig", "load_pipeline_config", "run_pipeline"]
