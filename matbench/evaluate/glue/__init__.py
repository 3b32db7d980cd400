"""Per-metric and per-extractor glue between matbench.metrics / matbench.features and the Evaluator."""
