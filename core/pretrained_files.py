"""How a backbone package names the images it was pretrained on (read by ``geofm info`` and the plugin's Model info
without torch)."""

from __future__ import annotations

from typing import Any


def image_part(file: dict[str, Any]) -> str:
    """'W × H px' of a pretraining image (an entry of the package's ``trained_on.files``), or of its part inside the
    extent when that was smaller."""
    whole, window = (file.get("width"), file.get("height")), file.get("window")
    if window and tuple(window[2:]) != whole:
        return f"{window[2]} × {window[3]} px inside the extent, of {whole[0]} × {whole[1]}"
    return f"{whole[0]} × {whole[1]} px"
