"""The auto run (`python -m src.auto`): the layer above training and inference that plans and composes their jobs."""
