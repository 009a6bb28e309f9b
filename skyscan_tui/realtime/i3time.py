"""I3Time: (year, daqTime in 0.1 ns since January 1 of that year, UTC with leap seconds).

Conversions to MJD and to a UTC timestamp remove the leap seconds inserted since January 1,
because MJD and ``datetime`` days have exactly 86400 s. See ``docs/realtime-format.md``.
"""

from __future__ import annotations

import datetime as _dt
import struct

from skyscan_tui.realtime.binreader import Reader
from skyscan_tui.realtime.errors import RealtimeError

__all__ = ["read_i3time", "i3time_split", "i3time_to_mjd", "i3time_to_utc"]

# MJDs of days that end with a leap second (IERS Bulletin C; see docs/realtime-format.md)
_LEAP_DAYS = (41316, 41498, 41682, 42047, 42412, 42777, 43143, 43508, 43873, 44238, 44785,
              45150, 45515, 46246, 47160, 47891, 48256, 48803, 49168, 49533, 50082, 50629,
              51178, 53735, 54831, 56108, 57203, 57753)
_MJD_EPOCH = _dt.date(1858, 11, 17).toordinal()


def read_i3time(r: Reader) -> tuple[int, int]:
    """A serialised I3Time → (year, daqTime [0.1 ns]); implausible values are refused."""
    r.klass("I3Time")
    r.klass("I3FrameObject")
    year = r.i32()
    daq = struct.unpack("<q", r.take(8))[0]
    if not 1970 <= year <= 2200 or not 0 <= daq < 367 * 86400 * 10**10:
        raise RealtimeError(f"{r.what}: implausible I3Time (year {year}, daqTime {daq})")
    return year, daq


def i3time_split(year: int, daq: int) -> tuple[int, int, int]:
    """I3Time → (MJD day, second of day, tenths of ns) in UTC, leap seconds removed.

    2016 ended with a leap second: 366 days of seconds after its start is still its last day.

    >>> i3time_split(2016, 366 * 86400 * 10**10)
    (57753, 86399, 0)
    """
    secs, tenth_ns = divmod(daq, 10**10)
    mjd0 = _dt.date(year, 1, 1).toordinal() - _MJD_EPOCH
    leaps = sum(1 for d in _LEAP_DAYS if mjd0 <= d < mjd0 + secs / 86400.0)
    day, sod = divmod(secs - leaps, 86400)
    return mjd0 + day, sod, tenth_ns


def i3time_to_mjd(year: int, daq: int) -> float:
    """[UTC days] I3Time (year, 0.1 ns ticks since Jan 1 of that year) → MJD.

    >>> i3time_to_mjd(2020, 0), i3time_to_mjd(2020, 43200 * 10**10)
    (58849.0, 58849.5)
    """
    day, sod, tenth_ns = i3time_split(year, daq)
    return day + (sod + tenth_ns * 1e-10) / 86400.0


def i3time_to_utc(year: int, daq: int) -> str:
    """I3Time → ``YYYY-MM-DD hh:mm:ss.ffffff`` UTC (microseconds truncated).

    >>> i3time_to_utc(2016, 366 * 86400 * 10**10 + 5_000_000_009)
    '2016-12-31 23:59:59.500000'
    """
    day, sod, tenth_ns = i3time_split(year, daq)
    stamp = _dt.datetime(1858, 11, 17) + _dt.timedelta(days=day, seconds=sod,
                                                       microseconds=tenth_ns // 10_000)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
