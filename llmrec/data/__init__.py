"""Datasets: loaders, preparation, splits, sequences."""
