"""Predictive-maintenance data: the five public files and a generator of the same five files.

The public data (Azure AI predictive-maintenance sample) comes in two versions that differ
in size and in format: 100 machines with ISO datetimes (`2015-01-01 06:00:00`), and 1000
machines with US datetimes and quoted headers (`"datetime"`, `1/1/2015 6:00:00 AM`). The
reader here accepts both, so the rest of the pipeline sees one schema.

The generator writes the same five files for N machines over a date range with the
statistics of the public data, plus failure precursors that a good model can learn
but not trivially: noise, precursors of varying strength, some failures with none,
and short harmless anomalies that look like the start of a precursor.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from refarch.datasets.download import DownloadError, RemoteFile, fetch

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

KINDS = ("telemetry", "errors", "maint", "machines", "failures")
SENSORS = ("volt", "rotate", "pressure", "vibration")
COMPONENTS = ("comp1", "comp2", "comp3", "comp4")
ERROR_TYPES = ("error1", "error2", "error3", "error4", "error5")
MODELS = ("model1", "model2", "model3", "model4")

# Column names and types of each file, in file order (the public files use these names).
SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "telemetry": (
        ("datetime", "timestamp"),
        ("machineID", "int"),
        ("volt", "double"),
        ("rotate", "double"),
        ("pressure", "double"),
        ("vibration", "double"),
    ),
    "errors": (("datetime", "timestamp"), ("machineID", "int"), ("errorID", "string")),
    "maint": (("datetime", "timestamp"), ("machineID", "int"), ("comp", "string")),
    "machines": (("machineID", "int"), ("model", "string"), ("age", "int")),
    "failures": (("datetime", "timestamp"), ("machineID", "int"), ("failure", "string")),
}

# The two datetime formats in circulation (Spark datetime patterns).
DATETIME_PATTERNS = ("yyyy-MM-dd HH:mm:ss", "M/d/yyyy h:mm:ss a", "yyyy-MM-dd'T'HH:mm:ss", "M/d/yyyy H:mm")

_PDM100 = "https://azuremlsampleexperiments.blob.core.windows.net/datasets/"
_PDM1000 = (
    "https://media.githubusercontent.com/media/Microsoft/SQL-Server-R-Services-Samples/"
    "master/PredictiveMaintanenceModelingGuide/Data/"
)

# Checksums are None: the files are not pinned by their publishers and we have no verified
# digest; `fetch` then accepts the bytes as downloaded. Pin them once you have a trusted copy.
SOURCES: dict[str, dict[str, RemoteFile]] = {
    "pdm100": {k: RemoteFile(f"{_PDM100}PdM_{k}.csv", sha256=None) for k in KINDS},
    "pdm1000": {k: RemoteFile(f"{_PDM1000}{k}.csv", sha256=None, filename=f"pdm1000_{k}.csv") for k in KINDS},
}


def fetch_files(source: str, cache_dir: Path, local_dir: Path | str | None = None) -> dict[str, Path]:
    """Local copies of the five files of `source` (`pdm100` or `pdm1000`).

    `local_dir` is a folder the user already has; files are found there by their public
    names (`PdM_telemetry.csv` or `telemetry.csv`). Otherwise the cache, else a download.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown maintenance dataset '{source}' (known: {', '.join(SOURCES)})")
    out: dict[str, Path] = {}
    for kind, remote in SOURCES[source].items():
        given = None
        if local_dir:
            folder = Path(local_dir).expanduser()
            candidates = [folder / n for n in (remote.name, f"PdM_{kind}.csv", f"{kind}.csv")]
            given = next((c for c in candidates if c.is_file()), None)
            if given is None:
                raise DownloadError(f"{folder}: no {kind} file (looked for {', '.join(c.name for c in candidates)})")
        out[kind] = fetch(remote, cache_dir / "maintenance" / source, local_path=given)
    return out


# ---- reading with Spark -----------------------------------------------------------


def parse_datetime(col: Column) -> Column:
    """A timestamp from either public format; null when no format matches."""
    from pyspark.sql import functions as F

    text = F.trim(col)
    return F.coalesce(*[F.try_to_timestamp(text, F.lit(p)) for p in DATETIME_PATTERNS])


def read_raw(spark: SparkSession, path: Path | str, kind: str) -> DataFrame:
    """The file as strings with canonical column names (header quotes, case and spaces ignored).

    Everything stays a string so a malformed value can be quarantined with its original text.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown maintenance file kind '{kind}' (known: {', '.join(KINDS)})")
    uri = Path(path).resolve().as_uri() if not str(path).startswith(("dbfs:", "abfss:", "file:")) else str(path)
    df = spark.read.option("header", True).option("inferSchema", False).option("mode", "PERMISSIVE").csv(uri)
    canonical = {name.lower(): name for name, _ in SCHEMAS[kind]}
    renamed = {}
    for c in df.columns:
        key = c.strip().strip('"').strip().lower()
        if key in canonical:
            renamed[c] = canonical[key]
    missing = [n for n, _ in SCHEMAS[kind] if n not in renamed.values()]
    if missing:
        raise ValueError(f"{path}: not a {kind} file, missing columns {', '.join(missing)} (found {df.columns})")
    return df.select(*[df[c].alias(n) for c, n in renamed.items()])


def typed_columns(kind: str) -> dict[str, Column]:
    """Expressions that turn the string columns of `read_raw` into typed ones (null if malformed)."""
    from pyspark.sql import functions as F

    out: dict[str, Column] = {}
    for name, type_ in SCHEMAS[kind]:
        raw = F.trim(F.col(name))
        if type_ == "timestamp":
            out[name] = parse_datetime(raw)
        elif type_ == "string":
            out[name] = raw
        else:
            out[name] = raw.try_cast(type_)
    return out


# ---- generating -------------------------------------------------------------------

# Per-sensor mean and standard deviation of the public 100-machine telemetry.
SENSOR_STATS = {"volt": (170.8, 15.5), "rotate": (446.6, 52.7), "pressure": (100.9, 11.0), "vibration": (40.4, 5.4)}
# How a failing component shows on the sensors (in standard deviations) and which errors it raises.
SIGNATURES = {
    "comp1": {"volt": 1.0, "vibration": 0.15},
    "comp2": {"rotate": -1.0, "volt": 0.15},
    "comp3": {"pressure": 1.0, "vibration": 0.3},
    "comp4": {"vibration": 1.0, "pressure": 0.3},
}
PRECURSOR_ERRORS = {
    "comp1": ("error1", "error3"),
    "comp2": ("error2", "error3"),
    "comp3": ("error4",),
    "comp4": ("error5",),
}
BASE_ERROR_RATE = {"error1": 4.5e-4, "error2": 4.5e-4, "error3": 4.5e-4, "error4": 3.5e-4, "error5": 2.0e-4}
EVENT_HOUR = 6  # the public data records failures and maintenance at 06:00
HAZARD_CALIBRATION = 1.25  # found by simulation: the yearly failure rate comes out as asked


@dataclass(frozen=True)
class GeneratorSettings:
    """Knobs of the generator; the defaults reproduce the public data's statistics."""

    failure_rate_per_year: float = 7.5  # per machine, all four components together
    inspection_days: int = 15  # scheduled maintenance cadence
    maint_history_days: int = 365  # maintenance records before `start` (as in the public data)
    no_precursor_share: float = 0.04  # failures that come without warning
    weak_precursor_share: float = 0.10
    strength: tuple[float, float] = (1.8, 3.2)  # precursor shift in standard deviations
    weak_strength: tuple[float, float] = (0.7, 1.8)
    precursor_lead_hours: tuple[int, int] = (25, 28)  # onset before the failure
    precursor_error_rate: float = 0.1  # per hour and unit strength
    decoys_per_year: float = 4.0  # short harmless anomalies per machine


def generate(
    n_machines: int,
    start: dt.date,
    end: dt.date,
    seed: int,
    settings: GeneratorSettings | None = None,
) -> dict[str, pd.DataFrame]:
    """The five tables (pandas, typed) for `n_machines` with hourly telemetry in [start 06:00, end 06:00)."""
    if n_machines < 1:
        raise ValueError("n_machines must be at least 1")
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    s = settings or GeneratorSettings()
    rng = np.random.default_rng(seed)
    machine_ids = np.arange(1, n_machines + 1)
    models = rng.choice(len(MODELS), size=n_machines, p=[0.16, 0.17, 0.35, 0.32])
    ages = rng.integers(0, 21, size=n_machines)
    machines = pd.DataFrame({"machineID": machine_ids, "model": [MODELS[m] for m in models], "age": ages})

    maint, failures = _simulate_components(rng, machine_ids, models, ages, start, end, s)
    telemetry, errors = _simulate_telemetry(rng, machine_ids, models, start, end, failures, s)
    log.info(
        "generated %d machines: %d telemetry rows, %d errors, %d maintenance records, %d failures",
        n_machines,
        len(telemetry),
        len(errors),
        len(maint),
        len(failures),
    )
    return {"telemetry": telemetry, "errors": errors, "maint": maint, "machines": machines, "failures": failures}


def _simulate_components(
    rng: np.random.Generator,
    machine_ids: np.ndarray,
    models: np.ndarray,
    ages: np.ndarray,
    start: dt.date,
    end: dt.date,
    s: GeneratorSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily wear, failures and replacements of four components per machine.

    Hazard grows with the component's days in service (wear) and a little with machine
    age and model; scheduled inspections replace worn components before they fail.
    """
    n = len(machine_ids)
    first = start - dt.timedelta(days=s.maint_history_days)
    days = (end - first).days
    comp_age = rng.integers(0, 300, size=(n, 4)).astype(float)  # days since last replacement
    machine_factor = (1 + ages / 40.0) * np.array([1.15, 1.05, 0.95, 0.9])[models]
    machine_factor = machine_factor / machine_factor.mean()
    # A hazard linear in component age, scaled so the yearly rate matches the public data.
    base = s.failure_rate_per_year / 4 / 365 * HAZARD_CALIBRATION
    phase = rng.integers(0, s.inspection_days, size=n)
    maint_rows: list[tuple[dt.datetime, int, str]] = []
    fail_rows: list[tuple[dt.datetime, int, str]] = []
    for d in range(days):
        day = first + dt.timedelta(days=d)
        when = dt.datetime.combine(day, dt.time(EVENT_HOUR))
        hazard = base * (0.4 + comp_age / 150.0) * machine_factor[:, None]
        failed = rng.random((n, 4)) < hazard
        inspect = (d + phase) % s.inspection_days == 0
        p_replace = np.clip((comp_age - 30) / 500.0, 0, 0.5)
        replaced = inspect[:, None] & ~failed & (rng.random((n, 4)) < p_replace)
        for i, c in zip(*np.nonzero(failed | replaced), strict=True):
            maint_rows.append((when, int(machine_ids[i]), COMPONENTS[c]))
            if failed[i, c] and day >= start:
                fail_rows.append((when, int(machine_ids[i]), COMPONENTS[c]))
        comp_age += 1
        comp_age[failed | replaced] = 0
    maint = pd.DataFrame(maint_rows, columns=["datetime", "machineID", "comp"])
    failures = pd.DataFrame(fail_rows, columns=["datetime", "machineID", "failure"])
    return maint, failures


def _simulate_telemetry(
    rng: np.random.Generator,
    machine_ids: np.ndarray,
    models: np.ndarray,
    start: dt.date,
    end: dt.date,
    failures: pd.DataFrame,
    s: GeneratorSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly sensor readings and error logs, with precursors before failures and harmless decoys."""
    t0 = dt.datetime.combine(start, dt.time(EVENT_HOUR))
    hours = int((dt.datetime.combine(end, dt.time(EVENT_HOUR)) - t0).total_seconds() // 3600)
    n = len(machine_ids)
    shift = np.zeros((n, hours, 4))  # in standard deviations
    error_rate = np.zeros((n, hours, 5))
    for k, e in enumerate(ERROR_TYPES):
        error_rate[:, :, k] = BASE_ERROR_RATE[e]
    index = {m: i for i, m in enumerate(machine_ids)}
    for row in failures.itertuples(index=False):
        i, f = index[row.machineID], int((row.datetime - t0).total_seconds() // 3600)
        u = rng.random()
        if u < s.no_precursor_share:
            continue
        weak = u < s.no_precursor_share + s.weak_precursor_share
        strength = rng.uniform(*s.weak_strength) if weak else rng.uniform(*s.strength)
        onset = f - int(rng.integers(s.precursor_lead_hours[0], s.precursor_lead_hours[1] + 1))
        _add_anomaly(shift, error_rate, i, onset, f, row.failure, strength, s.precursor_error_rate, ramp=True)
    # Decoys: short anomalies on a random component's sensors that do not end in a failure.
    n_decoys = rng.poisson(s.decoys_per_year * hours / 8760, size=n)
    for i in range(n):
        for _ in range(n_decoys[i]):
            begin = int(rng.integers(0, max(hours - 12, 1)))
            comp = COMPONENTS[int(rng.integers(0, 4))]
            length = int(rng.integers(3, 9))
            _add_anomaly(shift, error_rate, i, begin, begin + length, comp, rng.uniform(0.8, 2.0), 0.02, ramp=False)

    means = np.array([SENSOR_STATS[x][0] for x in SENSORS])
    stds = np.array([SENSOR_STATS[x][1] for x in SENSORS])
    model_offset = np.array(
        [[1.5, -10.0, 1.0, 0.5], [0.5, 5.0, -1.0, 0.0], [-0.5, 0.0, 0.5, -0.3], [-1.0, 3.0, -0.5, 0.2]]
    )
    noise = rng.standard_normal((n, hours, 4)) * 0.97
    values = means + model_offset[models][:, None, :] + (noise + shift) * stds
    stamps = pd.date_range(t0, periods=hours, freq="h")
    telemetry = pd.DataFrame(
        {
            "datetime": np.tile(stamps.values, n),
            "machineID": np.repeat(machine_ids, hours),
            **{x: values[:, :, k].reshape(-1) for k, x in enumerate(SENSORS)},
        }
    )
    hits = rng.random(error_rate.shape) < np.clip(error_rate, 0, 0.9)
    mi, hi, ei = np.nonzero(hits)
    errors = pd.DataFrame(
        {"datetime": stamps.values[hi], "machineID": machine_ids[mi], "errorID": np.array(ERROR_TYPES)[ei]}
    ).sort_values(["datetime", "machineID", "errorID"], ignore_index=True)
    return telemetry, errors


def _add_anomaly(
    shift: np.ndarray,
    error_rate: np.ndarray,
    machine: int,
    begin: int,
    stop: int,
    comp: str,
    strength: float,
    error_rate_per_strength: float,
    ramp: bool,
) -> None:
    """Shift the component's sensors over hours [begin, stop) and raise its error rate."""
    begin, stop = max(begin, 0), min(stop, shift.shape[1])
    if stop <= begin:
        return
    length = stop - begin
    profile = np.linspace(0.8, 1.2, length) if ramp else np.ones(length)
    for sensor, weight in SIGNATURES[comp].items():
        shift[machine, begin:stop, SENSORS.index(sensor)] += strength * weight * profile
    for e in PRECURSOR_ERRORS[comp]:
        error_rate[machine, begin:stop, ERROR_TYPES.index(e)] += error_rate_per_strength * strength * profile


DatetimeStyle = Literal["iso", "us"]


def write_csv(frames: Mapping[str, pd.DataFrame], folder: Path | str, style: DatetimeStyle = "iso") -> dict[str, Path]:
    """Write the tables as the public files: `PdM_<kind>.csv` (iso) or `<kind>.csv` (us, quoted headers)."""
    import csv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for kind in KINDS:
        df = frames[kind].copy()
        if "datetime" in df:
            stamps = pd.to_datetime(df["datetime"])
            if style == "iso":
                df["datetime"] = stamps.dt.strftime("%Y-%m-%d %H:%M:%S")
            else:  # 1/1/2015 6:00:00 AM, without leading zeros
                hour12 = (stamps.dt.hour + 11) % 12 + 1
                df["datetime"] = (
                    stamps.dt.month.astype(str)
                    + "/"
                    + stamps.dt.day.astype(str)
                    + "/"
                    + stamps.dt.year.astype(str)
                    + " "
                    + hour12.astype(str)
                    + stamps.dt.strftime(":%M:%S %p")
                )
        path = folder / (f"PdM_{kind}.csv" if style == "iso" else f"{kind}.csv")
        if style == "iso":
            df.to_csv(path, index=False, float_format="%.6f")
        else:
            header = ",".join(f'"{c}"' for c in df.columns)
            with path.open("w", newline="") as fh:
                fh.write(header + "\n")
                df.to_csv(fh, index=False, header=False, float_format="%.6f", quoting=csv.QUOTE_MINIMAL)
        out[kind] = path
    return out
