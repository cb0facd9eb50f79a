"""Global maxima every limit must respect, how fast sources may move, and the safe state."""

from __future__ import annotations

from typing import Literal

from aeqlab.protocol.fields import Strict, _f
from aeqlab.protocol.units import AMPERE, AMPERE_PER_SECOND, VOLT, VOLT_PER_SECOND, quantity


class Safety(Strict):
    """Global maxima every limit must respect, how fast sources may move, and the safe state."""

    max_voltage: quantity(VOLT, "largest |V| any source or limit may reach", gt=0) = 10.0
    max_current: quantity(AMPERE, "largest |I| any source or limit may reach", gt=0) = 0.1
    voltage_ramp_rate: quantity(VOLT_PER_SECOND, "largest voltage slew of any source", True, gt=0) = None
    current_ramp_rate: quantity(AMPERE_PER_SECOND, "largest current slew of any source", True, gt=0) = None
    safe_state: Literal["zero", "hold"] = _f(
        "zero", "on exit: zero (sources to 0 V / 0 A, outputs off) or hold (voltages kept, currents off)"
    )
    on_compliance: Literal["fault", "flag"] = _f(
        "fault",
        "when an SMU reports its compliance tripped after a nudge: fault (stop the run through the safe state) "
        "or flag (keep the sample, marked in the journal)",
    )
