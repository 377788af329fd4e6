"""attnlab: one set of attention primitives for an RNN translator, a Transformer and a ViT.

``attnlab.load(path)`` gives a trained checkpoint as a :class:`~attnlab.inference.Translator` or
:class:`~attnlab.inference.Classifier` (imported on first use, so ``import attnlab`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load", "__version__"]

if TYPE_CHECKING:
    from attnlab.inference import load


def __getattr__(name: str) -> Any:
    if name == "load":
        from attnlab.inference import load

        return load
    raise AttributeError(f"module 'attnlab' has no attribute '{name}'")
