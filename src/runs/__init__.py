"""Run folders: what a training run writes, and the one place that knows where each file lives."""
