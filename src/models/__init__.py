"""Models: the backbone registry, weights, the classifier and how it trains."""

# Pure-Python packages of the *_ns backbones (noisy-student EfficientNets). Kaggle's images lack
# them, so upload-src ships them inside the kit dataset (src.kaggle.kernels).
OPTIONAL_PACKAGES = ("efficientnet", "keras_applications")
