"""Trans Semarang BRT corridors, approximated.

Waypoints follow the corridors' real streets and termini (Mangkang, Penggaron, Terminal
Sisemut Ungaran, Terboyo, Tanjung Emas, Akpol, Cangkiran, Tawang, Meteseh, PRPP, UNDIP,
UNNES) but are hand-placed from public maps at a few hundred metres' accuracy, not
surveyed shapes; stops are every ``STOP_SPACING_M`` along them rather than the real shelter
list. Good enough for realistic speeds, distances and geography, not for timetabling.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP_SPACING_M = 700.0

Point = tuple[float, float]  # (lat, lon)


@dataclass(frozen=True)
class Corridor:
    code: str
    name: str
    waypoints: tuple[Point, ...]


TUGU_MUDA = (-6.9840, 110.4093)
SIMPANG_LIMA = (-6.9903, 110.4229)
PEMUDA = (-6.9810, 110.4150)
JOHAR = (-6.9700, 110.4260)
KALIBANTENG = (-6.9845, 110.3850)
JATINGALEH = (-7.0290, 110.4230)
KALIWIRU = (-7.0100, 110.4170)
TERBOYO = (-6.9550, 110.4610)
TAWANG = (-6.9645, 110.4280)
UNDIP = (-7.0500, 110.4380)

CORRIDORS: tuple[Corridor, ...] = (
    Corridor(
        "K1",
        "Mangkang - Penggaron",
        (
            (-6.9723, 110.2960),
            (-6.9800, 110.3300),
            (-6.9842, 110.3475),
            KALIBANTENG,
            TUGU_MUDA,
            SIMPANG_LIMA,
            (-7.0020, 110.4460),
            (-7.0085, 110.4700),
            (-7.0150, 110.4950),
        ),
    ),
    Corridor(
        "K2",
        "Terminal Sisemut Ungaran - Terboyo",
        (
            (-7.1380, 110.4080),
            (-7.1000, 110.4120),
            (-7.0650, 110.4180),
            JATINGALEH,
            KALIWIRU,
            SIMPANG_LIMA,
            PEMUDA,
            JOHAR,
            (-6.9600, 110.4450),
            TERBOYO,
        ),
    ),
    Corridor(
        "K3",
        "Pelabuhan Tanjung Emas - Akpol",
        (
            (-6.9480, 110.4240),
            TAWANG,
            JOHAR,
            PEMUDA,
            TUGU_MUDA,
            (-6.9930, 110.4070),
            (-7.0150, 110.4050),
        ),
    ),
    Corridor(
        "K4",
        "Cangkiran - Stasiun Tawang",
        (
            (-7.0730, 110.2940),
            (-7.0560, 110.3240),
            (-7.0040, 110.3470),
            KALIBANTENG,
            TUGU_MUDA,
            PEMUDA,
            TAWANG,
        ),
    ),
    Corridor(
        "K5",
        "Meteseh - PRPP",
        (
            (-7.0630, 110.4630),
            UNDIP,
            JATINGALEH,
            KALIWIRU,
            TUGU_MUDA,
            KALIBANTENG,
            (-6.9720, 110.3870),
        ),
    ),
    Corridor(
        "K6",
        "UNDIP - UNNES",
        (
            UNDIP,
            (-7.0420, 110.4240),
            JATINGALEH,
            KALIWIRU,
            (-7.0050, 110.3920),
            (-7.0300, 110.3900),
            (-7.0510, 110.3930),
        ),
    ),
    Corridor(
        "K7",
        "Terboyo - Balai Kota (Jl. Pemuda)",
        (TERBOYO, (-6.9600, 110.4450), JOHAR, PEMUDA),
    ),
)
