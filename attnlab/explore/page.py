"""The explorer page: one HTML file with its styles, script and data inline.

The template (``page.html`` beside this module) is the same for ``mode=explore`` (a file that
opens from disk with no network: no CDN, no fonts, no requests) and for ``mode=serve`` (the page
then posts new inputs to the server and adds the answers to its list). Views are drawn as SVG, so
"Save SVG" serialises the figure as it is and "Save PNG" draws that SVG on a canvas.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

PLACEHOLDER = "/*ATTNLAB_DATA*/"


def template() -> str:
    return resources.files("attnlab.explore").joinpath("page.html").read_text(encoding="utf-8")


def embed_json(data: dict[str, Any]) -> str:
    """JSON that is safe inside a <script> element: every "<" escaped (no "</script>" can end it)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def render_page(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (:func:`attnlab.explore.data.page_data`)."""
    page = template()
    if PLACEHOLDER not in page:
        raise RuntimeError("the explorer template lost its data placeholder")
    return page.replace(PLACEHOLDER, embed_json(data), 1)
