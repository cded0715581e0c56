"""PVE's tag colours: the datacenter ``tag-style`` color-map where it names a tag, else the colour
PVE's web UI computes from the tag's name (proxmox-widget-toolkit ``Utils.stringToRGB``: a
31-multiplier string hash of the tag plus "prox", each byte blended 70 % over white), with black
or white text, whichever reads better on it."""

from __future__ import annotations

from functools import lru_cache

from rich.style import Style


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@lru_cache(maxsize=1024)
def computed_rgb(tag: str) -> tuple[int, int, int]:
    """The background PVE's web UI gives a tag without a color-map entry."""
    hash_ = 0
    for char in tag + "prox":  # "give short strings more variance"
        hash_ = _int32(ord(char) + ((hash_ << 5) - hash_))
    return tuple(round((hash_ >> shift & 255) * 0.7 + 255 * 0.3) for shift in (0, 8, 16))  # type: ignore[return-value]


def _readable_on(rgb: tuple[int, int, int]) -> str:
    red, green, blue = rgb
    return "#000000" if (0.299 * red + 0.587 * green + 0.114 * blue) / 255 > 0.5 else "#FFFFFF"


def tag_style(tag: str, overrides: dict[str, tuple[str, str]]) -> Style:
    """The tag's colours: the color-map's (background, foreground) if it names the tag, else PVE's."""
    if tag in overrides:
        background, foreground = overrides[tag]
        rgb = (int(background[0:2], 16), int(background[2:4], 16), int(background[4:6], 16))
        return Style(bgcolor=f"#{background}", color=f"#{foreground}" if foreground else _readable_on(rgb))
    rgb = computed_rgb(tag)
    return Style(bgcolor="#{:02X}{:02X}{:02X}".format(*rgb), color=_readable_on(rgb))
