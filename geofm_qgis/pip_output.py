"""pip's output in plain words: which package it is fetching or installing, and why it failed."""

from __future__ import annotations

import re
from urllib.parse import unquote

#: what pip (its urllib3 and socket errors) prints when the package server cannot be reached
OFFLINE_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "getaddrinfo failed", "nodename nor servname", "ConnectTimeoutError",
    "ReadTimeoutError", "Network is unreachable", "ProxyError", "Max retries exceeded",
)
_WHEEL = re.compile(r"(?:^|/)([A-Za-z0-9_.]+?)-(\d[^-]*)-.*?\.whl")
_SIZE = re.compile(r"\(([\d.]+ [kMG]?B)\)")


def progress_text(line: str) -> str | None:
    """A short sentence for the pip output ``line`` worth showing, or None (the line stays in the details)."""
    text = line.strip()
    if text.startswith("Collecting "):
        return f"Looking up {_requirement(text[len('Collecting '):])}…"
    if text.startswith("Downloading "):
        size = _SIZE.search(text)
        return f"Downloading {_package(text[len('Downloading '):])}{f' ({size.group(1)})' if size else ''}…"
    if text.startswith("Installing collected packages:"):
        names = text.split(":", 1)[1].strip()
        return f"Installing {names}… (unpacking can take a few minutes)"
    if text.startswith("Successfully installed "):
        return "Installed " + ", ".join(text[len("Successfully installed "):].split()) + "."
    if "Retrying (Retry(" in text:
        return "No answer from the package server yet, trying again…"
    return None


def failure_text(lines: list[str], returncode: int | None) -> str:
    """Why the installation failed, in words an analyst can act on; pip's lines stay in the details."""
    output = "\n".join(lines)
    if any(marker in output for marker in OFFLINE_MARKERS):
        return ("The package server (download.pytorch.org or pypi.org) could not be reached: this computer seems "
                "to be offline, or a proxy or firewall blocks it. Connect to the internet and press Install "
                "again, or copy the command above and run it where the internet can be reached.")
    if "No matching distribution found" in output or "Could not find a version" in output:
        return ("pip found no matching package for this QGIS's Python and system (see Details). The command "
                "above can be run by hand with another version, or ask for help with the text in Details.")
    if "No space left on device" in output:
        return "The disk is full: free some space (see the size above) and press Install again."
    if "Permission denied" in output or "Access is denied" in output:
        return ("pip may not write to the QGIS profile folder (permission denied): run the command above from a "
                "shell with the right to write there.")
    errors = [line.strip() for line in lines if line.strip().startswith("ERROR:")]
    reason = errors[-1] if errors else f"pip stopped with exit code {returncode}"
    return f"The installation failed: {reason}. Nothing was installed; see Details for pip's full output."


def _requirement(text: str) -> str:
    return text.split(" (from")[0].split(";")[0].strip()


def _package(text: str) -> str:
    match = _WHEEL.search(unquote(text.split(" (")[0]))
    if match:
        return f"{match.group(1).replace('_', '-')} {match.group(2)}"
    return text.split(" (")[0].rsplit("/", 1)[-1]
