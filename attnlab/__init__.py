"""attnlab: one set of attention primitives for an RNN translator, a Transformer and a ViT."""

__version__ = "0.1.0"
