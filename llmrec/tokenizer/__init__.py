"""BEAT stage 1: LightGCN + VQ behaviour tokens with text supervision."""
