"""Physiologic valid ranges of the continuous channels (``clean`` mode, switch ``valid_ranges``).

A cleaned value outside ``[low, high]`` (inclusive; in the channel's unit after conversion) is dropped
and counted with the reason ``out of range [low, high]``. The limits are wide on purpose: they remove
entry errors and impossible values (a heart rate of 0 or 1,000, a temperature of 98 read as °C, FiO2
above 100 %), not extreme but real physiology. The reference applies no range (its
``variable_ranges.csv`` is loaded by nothing); ``medfuse`` mode keeps every value.

========================  =======  =======  ========
channel                   low      high     unit
========================  =======  =======  ========
Diastolic blood pressure  5        250      mmHg
Fraction inspired oxygen  0.21     1.0      fraction
Glucose                   10       2000     mg/dL
Heart Rate                10       300      /min
Height                    100      250      cm
Mean blood pressure       10       300      mmHg
Oxygen saturation         40       100      %
Respiratory rate          1        80       /min
Systolic blood pressure   20       300      mmHg
Temperature               25       45       °C
Weight                    20       400      kg
pH                        6.5      8.0      –
========================  =======  =======  ========

FiO2's lower limit is room air (0.21 is valid: spec §7 writes the interval as (0.21, 1.0], which
would drop every room-air reading; medcam_lab keeps 0.21).
"""

from __future__ import annotations

from typing import NamedTuple


class ValidRange(NamedTuple):
    """Inclusive physiologic limits of one continuous channel."""

    low: float
    high: float
    unit: str


VALID_RANGES: dict[str, ValidRange] = {
    "Diastolic blood pressure": ValidRange(5.0, 250.0, "mmHg"),
    "Fraction inspired oxygen": ValidRange(0.21, 1.0, "fraction"),
    "Glucose": ValidRange(10.0, 2000.0, "mg/dL"),
    "Heart Rate": ValidRange(10.0, 300.0, "/min"),
    "Height": ValidRange(100.0, 250.0, "cm"),
    "Mean blood pressure": ValidRange(10.0, 300.0, "mmHg"),
    "Oxygen saturation": ValidRange(40.0, 100.0, "%"),
    "Respiratory rate": ValidRange(1.0, 80.0, "/min"),
    "Systolic blood pressure": ValidRange(20.0, 300.0, "mmHg"),
    "Temperature": ValidRange(25.0, 45.0, "°C"),
    "Weight": ValidRange(20.0, 400.0, "kg"),
    "pH": ValidRange(6.5, 8.0, ""),
}
"""Valid range of each of the 12 continuous channels (table in the module docstring)."""
