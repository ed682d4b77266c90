"""crisis_keras: SSE-Cross-BERT-DenseNet (Abavisani et al., CVPR 2020) in Keras 3."""

__version__ = "0.1.0"
