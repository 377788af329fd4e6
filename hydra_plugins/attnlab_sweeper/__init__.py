"""attnlab's Hydra sweeper: Hydra's basic grid sweeper that checks every job before launching any.

Hydra finds it by scanning the ``hydra_plugins`` namespace package (which therefore has no
``__init__.py``); the scan imports :mod:`.sweeper`, which registers the ``hydra/sweeper: attnlab``
config.
"""
