"""Device facts that explain a latency number: model, SoC, ABI, Android version, CPU clusters, thermals.

Read in one ``adb shell`` round trip (getprop + sysfs + ``dumpsys battery``) so it is cheap enough to repeat
for the battery temperature between runs.

Facts explain a number; they are not needed to measure it. Some shells are restricted or lack a tool
(no ``getprop``, no ``dumpsys``, unreadable cpufreq), so a probe that fails or answers only in part keeps
what it got, lists what it could not read in ``probe_problems`` (saved with every result) and the sweep
goes on. Only a device that is gone stops it (``DeviceLostError`` from :meth:`Adb.shell`).
"""

from __future__ import annotations

import re
from typing import Any

from .adb import Adb, getprop

CPU_DIR = "/sys/devices/system/cpu"
_FACTS_CMD = (
    "getprop; echo @@cpus; "
    f"for c in {CPU_DIR}/cpu[0-9]*; do echo \"${{c##*/}} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)\"; done; "
    f"echo @@governor; cat {CPU_DIR}/cpu0/cpufreq/scaling_governor 2>/dev/null; "
    "echo @@battery; dumpsys battery 2>/dev/null"
)


def battery_temp_c(dumpsys_battery: str) -> float | None:
    """``temperature: 312`` (tenths of a degree C) -> 31.2."""
    m = re.search(r"^\s*temperature:\s*(-?\d+)", dumpsys_battery, re.M)
    return int(m.group(1)) / 10.0 if m else None


def read_battery_temp(adb: Adb) -> float | None:
    return battery_temp_c(adb.shell("dumpsys battery", check=False).stdout)


def parse_facts(text: str, serial: str) -> dict[str, Any]:
    sections: dict[str, list[str]] = {"props": []}
    current = "props"
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        else:
            sections[current].append(line)
    props = getprop("\n".join(sections["props"]))
    freqs = {}
    for line in sections.get("cpus", []):
        name, _, khz = line.partition(" ")
        if re.fullmatch(r"cpu\d+", name):
            freqs[int(name[3:])] = int(khz) if khz.strip().isdigit() else None
    max_freqs_mhz = [None if freqs[i] is None else freqs[i] // 1000 for i in sorted(freqs)]
    soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware")
    return {
        "name": props.get("ro.product.model") or serial,
        "serial": serial,
        "model": props.get("ro.product.model"),
        "manufacturer": props.get("ro.product.manufacturer"),
        "device": props.get("ro.product.device"),
        "soc": soc,
        "board": props.get("ro.board.platform") or props.get("ro.product.board"),
        "abi": props.get("ro.product.cpu.abi"),
        "android": props.get("ro.build.version.release"),
        "sdk": int(props["ro.build.version.sdk"]) if props.get("ro.build.version.sdk", "").isdigit() else None,
        "build": props.get("ro.build.fingerprint"),
        "cpu_cores": len(freqs) or None,
        "cpu_max_freq_mhz": max_freqs_mhz,
        "governor": (sections.get("governor") or [None])[0],
        "battery_temp_c": battery_temp_c("\n".join(sections.get("battery", []))),
    }


def probe_problems(facts: dict[str, Any], rc: int, stderr: str) -> list[str]:
    """What a facts probe could not read, in words (empty when it read everything it looks for)."""
    problems = []
    if facts["model"] is None and facts["android"] is None:
        problems.append("no system properties (getprop)")
    freqs = facts["cpu_max_freq_mhz"]
    if not freqs:
        problems.append("no CPU max frequencies (cpufreq)")
    elif None in freqs:
        problems.append(f"no max frequency of cpu {', '.join(str(i) for i, f in enumerate(freqs) if f is None)}")
    if facts["battery_temp_c"] is None:
        problems.append("no battery temperature (dumpsys battery)")
    if rc != 0:
        said = " | ".join(line.strip() for line in stderr.strip().splitlines()[-3:])
        problems.append(f"the probe exited {rc}" + (f": {said[:200]}" if said else ""))
    return problems


def device_facts(adb: Adb) -> dict[str, Any]:
    """Facts of ``adb.serial``; the ``name`` is the marketing model (folder name of the results), or the
    serial when the properties cannot be read. ``probe_problems`` lists what was missing."""
    r = adb.shell(_FACTS_CMD, check=False)
    facts = parse_facts(r.stdout, adb.serial or "")
    facts["probe_problems"] = probe_problems(facts, r.rc, r.stderr)
    return facts
