"""The real ``adb`` client, called with ``subprocess``: device discovery, shell, push, connect.

Why ``subprocess`` and not ``adbutils``: the user already has (and trusts) the ``adb`` binary that talks to
their phone over USB with their RSA key; calling it means no second implementation of the protocol, no
extra dependency, adb's own error messages, and ``--dry-run`` can print commands that the user can paste.
adb >= 1.0.39 speaks shell protocol v2 when the device offers it, so ``adb shell`` returns the remote exit
code and keeps stderr separate.

A device that vanishes (unplugged, adb server restarted, Wi-Fi dropped) raises :class:`DeviceLostError`;
any other failure raises :class:`AdbError`. Both are ``UserError``s (one line at the CLI).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass

from mtnet.errors import UserError

_LOST_MARKERS = ("not found", "offline", "no devices", "device unauthorized", "closed", "disconnected",
                 "connection reset", "cannot connect", "failed to connect", "protocol fault", "unable to connect")


class AdbError(UserError):
    """adb itself failed (missing binary, command error)."""


class DeviceLostError(AdbError):
    """The device is no longer reachable through adb."""


@dataclass
class ShellResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr


class Adb:
    """One adb server (``-P port``) and optionally one device (``-s serial``).

    ``dry_run`` prints every command instead of running it and returns empty successful results.
    """

    def __init__(self, serial: str | None = None, *, adb_path: str | None = None, port: int | None = None,
                 dry_run: bool = False, timeout_s: float = 600.0):
        self.serial, self.port, self.dry_run, self.timeout_s = serial, port, dry_run, timeout_s
        self.adb_path = adb_path or os.environ.get("ADB") or shutil.which("adb") or "adb"
        if not dry_run and shutil.which(self.adb_path) is None:
            raise AdbError(f"'{self.adb_path}' not found: install Android platform-tools "
                           "(Debian/Ubuntu: apt-get install adb) or pass --adb PATH")

    def for_device(self, serial: str) -> Adb:
        return Adb(serial, adb_path=self.adb_path, port=self.port, dry_run=self.dry_run, timeout_s=self.timeout_s)

    def argv(self, *args: str) -> list[str]:
        cmd = [self.adb_path]
        if self.port:
            cmd += ["-P", str(self.port)]
        if self.serial:
            cmd += ["-s", self.serial]
        return cmd + list(args)

    def run(self, *args: str, timeout_s: float | None = None) -> ShellResult:
        cmd = self.argv(*args)
        if self.dry_run:
            print(shlex.join(cmd))
            return ShellResult(0, "", "")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                               timeout=timeout_s or self.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise self._lost_or(f"'{shlex.join(cmd)}' timed out after {timeout_s or self.timeout_s:.0f} s") from None
        return ShellResult(p.returncode, p.stdout, p.stderr)

    def _lost_or(self, message: str) -> AdbError:
        """After a failure: DeviceLostError if the device is gone, else AdbError(message)."""
        if self.serial and not self.dry_run:
            state = self.state()
            if state != "device":
                return DeviceLostError(f"device {self.serial} is {state or 'gone'} ({message})")
            if not self.responds():  # the adb server may not have noticed the drop yet
                return DeviceLostError(f"device {self.serial} stopped responding ({message})")
        return AdbError(message)

    def alive(self) -> bool:
        return self.dry_run or (self.state() == "device" and self.responds())

    def responds(self) -> bool:
        """A trivial shell round trip succeeds."""
        try:
            p = subprocess.run(self.argv("shell", "echo alive"), capture_output=True, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0 and p.stdout.strip() == "alive"

    def state(self) -> str | None:
        """'device', 'offline', 'unauthorized', ... or None when adb does not know the serial."""
        try:
            p = subprocess.run(self.argv("get-state"), capture_output=True, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        return p.stdout.strip() or None if p.returncode == 0 else None

    def devices(self) -> list[tuple[str, str]]:
        """(serial, state) of every device the adb server knows."""
        r = self.run("devices")
        if r.rc != 0:
            raise AdbError(f"'adb devices' failed: {r.output.strip()[:300]}")
        out = []
        for line in r.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("*"):
                out.append((parts[0], parts[1]))
        return out

    def connect(self, address: str) -> None:
        """``adb connect HOST:PORT`` (Wi-Fi debugging, emulators, the test stand-in)."""
        if not self.dry_run and dict(self.devices()).get(address) not in (None, "device"):
            self.run("disconnect", address, timeout_s=30)  # a stale offline entry would block the reconnect
        r = self.run("connect", address, timeout_s=30)
        text = r.output.strip()
        if self.dry_run:
            return
        if r.rc != 0 or "connected to" not in text:
            raise AdbError(f"adb connect {address} failed: {text[:300]}")
        deadline = time.monotonic() + 15
        while dict(self.devices()).get(address) != "device" and time.monotonic() < deadline:
            time.sleep(0.2)

    def shell(self, command: str, *, check: bool = True, timeout_s: float | None = None) -> ShellResult:
        """Run ``command`` (one string, already quoted for the device's sh) and return rc/stdout/stderr.

        A failure that adb reports (rather than the command) is checked against the device state, so an
        unplugged phone raises DeviceLostError instead of looking like a failed benchmark.
        """
        r = self.run("shell", command, timeout_s=timeout_s)
        if r.rc == 0 or self.dry_run:
            return r
        adb_said = r.stderr.strip().lower()
        if r.rc == 255 or adb_said.startswith("error:") or (r.rc == 1 and any(m in adb_said for m in _LOST_MARKERS)):
            err = self._lost_or(f"adb shell failed: {r.output.strip()[-300:]}")
            if isinstance(err, DeviceLostError):
                raise err
        if check:
            raise AdbError(f"'{command}' failed on {self.serial} (exit {r.rc}): {r.output.strip()[-300:]}")
        return r

    def push(self, local: str, remote: str) -> None:
        r = self.run("push", local, remote)
        if r.rc != 0:
            raise self._lost_or(f"adb push {local} {remote} failed: {r.output.strip()[-300:]}")

    def pull(self, remote: str, local: str) -> None:
        r = self.run("pull", remote, local)
        if r.rc != 0:
            raise self._lost_or(f"adb pull {remote} failed: {r.output.strip()[-300:]}")

    def install(self, apk: str) -> None:
        r = self.run("install", "-r", "-d", "-g", apk)
        if r.rc != 0 or "Success" not in r.stdout:
            raise self._lost_or(f"adb install {apk} failed: {r.output.strip()[-300:]}")


def getprop(text: str) -> dict[str, str]:
    """Parse ``getprop`` output (``[key]: [value]`` per line)."""
    props = {}
    for line in text.splitlines():
        if line.startswith("[") and "]: [" in line:
            key, _, value = line.partition("]: [")
            props[key[1:]] = value.rstrip().removesuffix("]")
    return props
