"""Kaggle image-classification kit: every command line is `python -m src.<command>`.

src/ holds the commands people run; the library lives in its packages (core, data, pipeline,
models, hardware, runs, training, inference, kaggle). README's "Layout" has the map.
"""
import os

# TensorFlow's C++ start-up lines (CUDA probing on machines without a GPU, oneDNN notices) are
# not the kit's output; errors still reach the user as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
