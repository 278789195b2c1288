"""Which device will run the model, in the words the dialogs show."""

from __future__ import annotations


def device_text(choice: str = "auto") -> str:
    """'Runs on: NVIDIA …', '… Apple MPS' or '… CPU only', or why the chosen device cannot be used."""
    try:
        from ..core.device import describe_device
        from ..core.errors import GeoFMError
    except ImportError:
        return "Runs on: unknown (torch is not installed)"
    try:
        return f"Runs on: {describe_device(choice)}"
    except GeoFMError as err:
        return f"Runs on: not available — {err.problem}"
