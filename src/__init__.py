"""Kaggle image-classification kit: every command line is `python -m src.<module>`."""
