"""One real ``tidings serve`` subprocess on free ports with a fresh data directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import machine

CLK_TCK = os.sysconf("SC_CLK_TCK")
_URL = re.compile(r"(sender API|device gateway)[^:]*:\s+(\S+://\S+)")


def _tidings_cmd() -> list[str]:
    script = Path(sys.executable).with_name("tidings")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "tidings.cli.main"]


class Process:
    """A server process the bench started: its CPU time and memory from /proc, and stopping it."""

    dir: Path
    proc: subprocess.Popen[bytes] | None
    errors: list[str]

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.proc = None
        self.errors = []
        self._cpu_ns = 0  # what cpu_seconds() counted so far, and each thread's run time then
        self._task_ns: dict[str, int] = {}

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _times(self) -> tuple[int, int]:
        """User and system CPU time of the process (all its threads), in clock ticks."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])  # utime, stime (fields 14, 15)

    def cpu_seconds(self) -> float:
        """CPU time of the process (all its threads) so far, from the scheduler's run time of
        each thread in nanoseconds (``/proc/<pid>/task/*/schedstat``): the clock ticks of
        ``/proc/<pid>/stat`` are 10 ms, ±7 % of a 0.14 s broadcast round. A thread that ends
        between two calls loses only its time since the last call (there are none in rounds)."""
        seen: dict[str, int] = {}
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:  # the process is gone: what was counted
            return self._cpu_ns / 1e9
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    seen[tid] = int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        last = self._task_ns
        self._cpu_ns += sum(ns - last.get(tid, 0) for tid, ns in seen.items())
        self._task_ns = seen
        return self._cpu_ns / 1e9

    def system_cpu_seconds(self) -> float:
        """The system (kernel) part of :meth:`cpu_seconds`."""
        return self._times()[1] / CLK_TCK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def wait_idle(self, quiet: float = 0.02, window: float = 0.2, timeout: float = 10.0) -> float:
        """Wait until the process uses under ``quiet`` CPU seconds per ``window``; return CPU."""
        deadline = time.monotonic() + timeout
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - last < quiet:
                return now
            last = now
        return last

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def stop(self) -> None:
        self.terminate()
        shutil.rmtree(self.dir, ignore_errors=True)


class Server(Process):
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, label: str) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix=f"tidings-bench-{label}-")))
        self.label = label
        self.data_dir = self.dir / "data"
        self.api_url = ""
        self.gateway_url = ""
        self.app: dict[str, str] = {}

    def create_app(self, package: str = "com.bench.app") -> dict[str, str]:
        out = subprocess.run(
            [
                *_tidings_cmd(),
                "app",
                "create",
                "--data-dir",
                str(self.data_dir),
                "--name",
                "B",
                "--package",
                package,
            ],
            capture_output=True,
            timeout=60,
        )
        if out.returncode != 0:
            tail = out.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"tidings app create failed ({out.returncode}): {tail}")
        self.app = json.loads(out.stdout)
        return self.app

    def private_channel(self, channel_id: str = "bench") -> str:
        """Add a channel in the ``private`` category, which has no daily delivery quota: the
        default category's quota (one message per registered device and day, at least 10,000)
        would refuse the bench's later rounds with 200001."""
        resp = httpx.post(
            f"{self.api_url}/v1/channel/add",
            headers={"Authorization": f"key={self.app['app_secret']}"},
            data={"channel_id": channel_id, "channel_name": "Bench", "category": "private"},
            timeout=30,
        ).json()
        if resp.get("code") != 0:
            raise RuntimeError(f"channel not added: {resp}")
        return channel_id

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "TIDINGS_HOST": "127.0.0.1",
            "TIDINGS_PORT": "0",
            "TIDINGS_GATEWAY_PORT": "0",
            "TIDINGS_DATA_DIR": str(self.data_dir),
        }
        out_path, err_path = self.dir / "stdout.log", self.dir / "stderr.log"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*_tidings_cmd(), "serve", "--log-level", "warning"],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=machine.server_preexec,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            urls = dict(_URL.findall(out_path.read_text(errors="replace")))
            if len(urls) == 2:
                self.api_url, self.gateway_url = urls["sender API"], urls["device gateway"]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.stderr_tail()
        self.stop()
        raise RuntimeError(f"server did not start; stderr:\n{tail}")

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = (self.dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def error_lines(self) -> list[str]:
        """WARNING / ERROR lines the server logged (it runs with --log-level warning)."""
        try:
            text = (self.dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if " WARNING " in ln or " ERROR " in ln]

    def stop(self) -> None:
        self.terminate()
        if self.dir.exists():
            self.errors = self.error_lines()
        shutil.rmtree(self.dir, ignore_errors=True)
