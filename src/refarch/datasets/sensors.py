"""Sensor readings `TS, Device, Sensor, Value`: a loader for files people have, and a generator.

The many-models reference ships its readings as CSV with the sensor column called `Tag`;
the loader accepts that, `Sensor`, other casings and common time-column names, and keeps
every value as text so malformed rows reach ingest (and its quarantine) instead of being
dropped here.

The generator simulates D devices × S sensors with per-sensor operating ranges, a daily
cycle, noise, and anomalies at known positions (spikes, drifts, stuck values). Every hour
is generated from `(seed, hour)` alone, so hours can be produced one at a time as they
"arrive" and still form one consistent series.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from refarch.datasets.download import RemoteFile, fetch

log = logging.getLogger(__name__)

COLUMNS = ("TS", "Device", "Sensor", "Value")
LABEL_COLUMNS = ("Device", "Sensor", "kind", "start", "end")
ANOMALY_KINDS = ("spike", "drift", "stuck")

_ALIASES = {
    "ts": "TS",
    "timestamp": "TS",
    "time": "TS",
    "datetime": "TS",
    "device": "Device",
    "deviceid": "Device",
    "device_id": "Device",
    "sensor": "Sensor",
    "tag": "Sensor",
    "value": "Value",
    "reading": "Value",
}


class SensorDataError(ValueError):
    """A readings file without the columns TS, Device, Sensor (or Tag) and Value."""


# ---- loader --------------------------------------------------------------------------


def normalize_columns(df: pd.DataFrame, source: str = "readings") -> pd.DataFrame:
    """Rename known aliases (Tag → Sensor, Timestamp → TS, any casing) and keep the four columns."""
    renamed = {c: _ALIASES.get(str(c).strip().lower().replace(" ", ""), c) for c in df.columns}
    out = df.rename(columns=renamed)
    missing = [c for c in COLUMNS if c not in out.columns]
    if missing:
        raise SensorDataError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))} "
            "(expected TS, Device, Sensor or Tag, Value)"
        )
    return out.loc[:, list(COLUMNS)]


def read_readings(path: Path | str) -> pd.DataFrame:
    """Read a readings file (.csv, .tsv, .txt, optionally .gz, or a .zip of them) as text columns."""
    path = Path(path)
    if path.suffix == ".zip":
        frames = []
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if name.endswith("/") or not name.lower().endswith((".csv", ".tsv", ".txt", ".csv.gz")):
                    continue
                data = zf.read(name)
                frames.append(_read_table(io.BytesIO(data), name, f"{path}:{name}"))
        if not frames:
            raise SensorDataError(f"{path}: no .csv/.tsv file inside the zip")
        return pd.concat(frames, ignore_index=True)
    return _read_table(path, path.name, str(path))


def _read_table(source: Path | io.BytesIO, name: str, label: str) -> pd.DataFrame:
    stem = name[:-3] if name.endswith(".gz") else name
    sep = "\t" if stem.lower().endswith(".tsv") else None  # None: let pandas sniff , or ;
    compression = "gzip" if name.endswith(".gz") else None
    df = pd.read_csv(
        source,
        sep=sep,
        engine="python",
        dtype=str,
        keep_default_na=False,
        compression=compression,
    )
    return normalize_columns(df, label)


def load_readings(
    source: str | Path,
    cache_dir: Path,
    sha256: str | None = None,
) -> pd.DataFrame:
    """Readings from a local file or an http(s) URL (downloaded once into `cache_dir`).

    The reference's own CSV has no stable public address we can pin, so there is no built-in
    URL and no checksum: pass the file (or a URL and, if you know it, its SHA-256).
    """
    text = str(source)
    if text.startswith(("http://", "https://")):
        path = fetch(RemoteFile(text, sha256), cache_dir)
    else:
        path = fetch(RemoteFile(text, sha256), cache_dir, local_path=text)  # checks it exists (and its hash)
    df = read_readings(path)
    log.info("loaded %d readings from %s", len(df), path)
    return df


# ---- generator -----------------------------------------------------------------------


@dataclass(frozen=True)
class SensorProfile:
    """A kind of sensor: its normal operating range sets level, noise and daily swing."""

    name: str
    unit: str
    low: float
    high: float

    @property
    def span(self) -> float:
        return self.high - self.low


PROFILES: tuple[SensorProfile, ...] = (
    SensorProfile("temperature", "degC", 40.0, 80.0),
    SensorProfile("pressure", "bar", 2.0, 6.0),
    SensorProfile("vibration", "mm/s", 0.5, 4.5),
    SensorProfile("humidity", "%", 30.0, 60.0),
    SensorProfile("rpm", "1/min", 1400.0, 1600.0),
    SensorProfile("current", "A", 8.0, 16.0),
    SensorProfile("voltage", "V", 380.0, 420.0),
    SensorProfile("flow", "l/min", 100.0, 180.0),
)


@dataclass(frozen=True)
class SensorSpec:
    """What to generate: D devices × S sensors, one reading every `step_seconds`.

    No defaults: the anomaly pipeline's values live in conf/anomaly.yml (`generator`).
    """

    devices: int
    sensors: int
    step_seconds: int
    anomaly_rate: float  # expected anomalies per series and hour
    seed: int

    def __post_init__(self) -> None:
        if self.devices < 1 or self.sensors < 1:
            raise ValueError("devices and sensors must be at least 1")
        if not 1 <= self.step_seconds <= 3600 or 3600 % self.step_seconds:
            raise ValueError("step_seconds must divide an hour (1..3600)")
        if not 0 <= self.anomaly_rate <= 1:
            raise ValueError("anomaly_rate must be within [0, 1]")

    def device_names(self) -> list[str]:
        width = max(3, len(str(self.devices)))
        return [f"dev-{i:0{width}d}" for i in range(1, self.devices + 1)]

    def sensor_profiles(self) -> list[SensorProfile]:
        """The first S profiles; past the eighth, repeats with a suffix (temperature_2, ...)."""
        out = []
        for j in range(self.sensors):
            base = PROFILES[j % len(PROFILES)]
            suffix = "" if j < len(PROFILES) else f"_{j // len(PROFILES) + 1}"
            out.append(SensorProfile(base.name + suffix, base.unit, base.low, base.high))
        return out


def _hour_index(hour: dt.datetime) -> int:
    return int(hour.replace(tzinfo=dt.timezone.utc).timestamp() // 3600)


def floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0, tzinfo=None)


def generate_hour(spec: SensorSpec, hour: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One hour of readings for every (device, sensor), and the anomalies injected into it.

    Returns (readings with TS, Device, Sensor, Value; labels with Device, Sensor, kind,
    start, end — the first and last affected reading, inclusive).
    """
    hour = floor_hour(hour)
    steps = 3600 // spec.step_seconds
    devices, profiles = spec.device_names(), spec.sensor_profiles()
    n_series = len(devices) * len(profiles)
    # per-series constants come from the seed alone, so every hour continues the same series
    const = np.random.default_rng([spec.seed, 0])
    offsets = const.normal(0.0, 0.1, size=(len(devices), len(profiles)))
    phases = const.uniform(0.0, 2 * np.pi, size=(len(devices), len(profiles)))
    rng = np.random.default_rng([spec.seed, 1, _hour_index(hour)])

    lows = np.array([p.low for p in profiles])
    spans = np.array([p.span for p in profiles])
    mid = (lows + spans / 2)[None, :] + offsets * spans[None, :]  # (D, S)
    noise_sd = (spans / 20)[None, :].repeat(len(devices), axis=0)
    swing = spans / 10  # daily cycle amplitude: ±2 noise sd
    seconds = hour.hour * 3600 + np.arange(steps) * spec.step_seconds  # (T,)
    day = 2 * np.pi * seconds / 86400.0
    level = mid[:, :, None] + swing[None, :, None] * np.sin(day[None, None, :] + phases[:, :, None])
    values = level + rng.normal(0.0, 1.0, size=(len(devices), len(profiles), steps)) * noise_sd[:, :, None]
    values = values.reshape(n_series, steps)
    series_span = np.tile(spans, len(devices))

    labels = []
    has = rng.random(n_series) < spec.anomaly_rate
    for k in np.flatnonzero(has):
        kind = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        span = series_span[k]
        if kind == "spike":
            length = int(rng.integers(1, 4))
            start = int(rng.integers(0, steps - length + 1))
            values[k, start : start + length] += sign * span * rng.uniform(0.5, 0.8)
        elif kind == "drift":
            length = min(steps, max(3, int(rng.integers(600, 1200) // spec.step_seconds)))
            start = int(rng.integers(0, steps - length + 1))
            ramp = np.linspace(0.4, 1.0, length)
            values[k, start : start + length] += sign * span * rng.uniform(0.35, 0.5) * ramp
        else:  # stuck: the sensor repeats its last value
            length = min(steps, max(3, int(rng.integers(300, 900) // spec.step_seconds)))
            start = int(rng.integers(1, steps - length + 1)) if steps > length else 0
            values[k, start : start + length] = values[k, max(start - 1, 0)]
        d, s = divmod(int(k), len(profiles))
        labels.append(
            (
                devices[d],
                profiles[s].name,
                kind,
                hour + dt.timedelta(seconds=start * spec.step_seconds),
                hour + dt.timedelta(seconds=(start + length - 1) * spec.step_seconds),
            )
        )

    ts = pd.Timestamp(hour) + pd.to_timedelta(np.arange(steps) * spec.step_seconds, unit="s")
    readings = pd.DataFrame(
        {
            "TS": np.tile(ts.to_numpy(), n_series),
            "Device": np.repeat(np.repeat(devices, len(profiles)), steps),
            "Sensor": np.repeat(np.tile([p.name for p in profiles], len(devices)), steps),
            "Value": np.round(values.reshape(-1), 4),
        }
    )
    label_df = pd.DataFrame(labels, columns=list(LABEL_COLUMNS))
    label_df["start"] = pd.to_datetime(label_df["start"])
    label_df["end"] = pd.to_datetime(label_df["end"])
    return readings, label_df


def generate(spec: SensorSpec, start: dt.datetime, hours: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`hours` consecutive hours from `start` (floored to the hour): readings and labels."""
    if hours < 1:
        raise ValueError("hours must be at least 1")
    parts = [generate_hour(spec, floor_hour(start) + dt.timedelta(hours=h)) for h in range(hours)]
    readings = pd.concat([p[0] for p in parts], ignore_index=True)
    labels = pd.concat([p[1] for p in parts], ignore_index=True)
    return readings, labels


def to_csv_bytes(df: pd.DataFrame, columns: Sequence[str] = COLUMNS) -> bytes:
    """CSV with a header and ISO timestamps (`2026-01-01T00:00:10`), as the landing files use."""
    out = df.loc[:, list(columns)].copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return out.to_csv(index=False).encode()
