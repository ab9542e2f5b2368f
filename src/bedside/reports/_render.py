"""What every report shares: the template environment and the figure helpers.

Reports are self-contained HTML: figures are drawn with matplotlib's object API (no global
pyplot state, safe in threads) and embedded as PNG data URIs.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["FAINT", "TEMPLATES", "new_figure", "png_data_uri", "style_axes"]

#: Grid lines.
FAINT: Final = "#eaecf0"

#: The report templates (``src/bedside/reports/templates``), HTML escaped, undefined names fail.
TEMPLATES: Final = Environment(
    loader=PackageLoader("bedside.reports", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def new_figure(width: float, height: float) -> Any:
    """Return a matplotlib figure of ``width`` × ``height`` inches with a constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_data_uri(fig: Any, *, dpi: int = 100) -> str:
    """Render ``fig`` as a PNG ``data:`` URI for an ``<img src>``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def style_axes(ax: Any) -> None:
    """A light grid behind the data and no top or right spine."""
    ax.grid(color=FAINT)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
