"""The attention explorer: an interactive page (``mode=explore``: a self-contained file;
``mode=serve``: a local server) showing every layer and head of a checkpoint's attention.

- :mod:`attnlab.explore.data`: the page's data (attention as rounded JSON-ready lists);
- :mod:`attnlab.explore.page`: the HTML page (template ``page.html``, script and styles inline);
- :mod:`attnlab.explore.modes`: ``mode=explore`` and ``mode=serve`` from a composed config;
- :mod:`attnlab.explore.server`: the Starlette app behind ``mode=serve``;
- :mod:`attnlab.explore.saved`: the page from a training run's saved ``attention/*.npz``.
"""
