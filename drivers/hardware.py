"""What a model family can physically source or measure, from its manual."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareRange:
    """The hardware's own range (SI) of one driver class; None where it does not apply.

    Parameters
    ----------
    voltage
        Lowest and highest voltage it sources or measures (V).
    current
        Lowest and highest current it sources or measures (A).
    source
        Where the figures come from (manual, section).
    """

    voltage: tuple[float, float] | None = None
    current: tuple[float, float] | None = None
    source: str = ""

    def excess(self, what: str, low: float, high: float) -> str | None:
        """Why [low, high] of ``what`` ("voltage"/"current") exceeds this range, or None when it fits."""
        rng = getattr(self, what)
        if rng is None or (rng[0] <= low and high <= rng[1]):
            return None
        unit = "V" if what == "voltage" else "A"
        return (
            f"{what} range [{low:g}, {high:g}] {unit} exceeds the hardware's "
            f"[{rng[0]:g}, {rng[1]:g}] {unit} ({self.source})"
        )
