"""A real /usr/bin/prometheus for the test tiers (dashboards, e2e): it scrapes the given targets
every second, optionally with rule files, and is stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import yaml

import promql
import relaytest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class PrometheusServer:
    def __init__(self, workdir: Path, jobs: dict[str, list[tuple[int, dict]]], rule_files: tuple = ()):
        assert Path(PROMETHEUS).exists(), \
            f"{PROMETHEUS} not found: scripts/install-deps.sh installs the Debian package prometheus"
        self.port = relaytest.free_port()
        self.dir = workdir / "prometheus"
        self.dir.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}
                                                     for port, labels in targets]}
                for job, targets in jobs.items()],
        }
        if rule_files:
            config["rule_files"] = [str(f) for f in rule_files]
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = self.dir / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        self.api = promql.Prometheus(f"http://127.0.0.1:{self.port}")
        try:
            deadline = time.monotonic() + 60
            while not self.api.ready():
                assert self.proc.poll() is None, f"prometheus exited {self.proc.returncode}:\n{self.log()}"
                assert time.monotonic() < deadline, f"timed out after 60s waiting for Prometheus /-/ready:\n{self.log()}"
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self):
        relaytest.stop_process(self.proc, term_timeout=10)
        self._log.close()
