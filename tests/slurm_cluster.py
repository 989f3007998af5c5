"""A throwaway single-node SLURM cluster with accounting, from Debian's packages, for
tests/test_slurm_live.py; also by hand, as root on Debian:

    python tests/slurm_cluster.py up      # installs what is missing, starts it, prints its environment
    export SLURM_CONF=...                 # then sbatch/squeue/sacct/seven-bench -m ... talk to it
    python tests/slurm_cluster.py down /tmp/seven-bench-slurm-XXXX

Everything lives in one folder (configs, state, logs, munge key and socket, MariaDB's data), the
daemons listen on free ports, and nothing under /etc is read or written, so a machine's own SLURM or
MariaDB is left alone. No systemd: munged, mariadbd, slurmdbd, slurmctld and slurmd run in the
foreground as children of this process. Every process the cluster starts, and every process those
start (slurmstepd, the jobs), carries MARKER in its environment: stop() ends them by PID, daemons
first, then whatever else carries it, and returns the PIDs that survived (none, or it is a bug).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
MARKER = "SEVEN_BENCH_TEST_CLUSTER"
CLUSTER = "sevenbench"
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (it installs Debian packages and runs SLURM's daemons)"
    if not Path("/etc/debian_version").is_file() or shutil.which("apt-get") is None:
        return (
            "needs Debian with apt-get (it installs slurmctld, slurmd, slurm-client, munge, slurmdbd, mariadb-server)"
        )
    return None


def missing_packages() -> list[str]:
    missing = []
    for package in PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def install_packages(timeout: float = 300) -> float:
    """apt-get install what is missing (apt-get update first only when the package lists do not know a
    package). No service is started: where no policy-rc.d forbids it (a container's usually does), one is
    put in place for the install and removed after. Returns the seconds it took; RuntimeError on failure."""
    started = time.monotonic()
    missing = missing_packages()
    if not missing:
        return 0.0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    own_policy = not POLICY_RC.exists()
    if own_policy:
        POLICY_RC.write_text(
            "#!/bin/sh\n# seven-bench's test cluster: no service starts during its install\nexit 101\n"
        )
        POLICY_RC.chmod(0o755)
    try:
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 and re.search(r"Unable to locate package|no installation candidate|404", done.stderr):
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=timeout)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        if own_policy:
            POLICY_RC.unlink(missing_ok=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"apt-get install {' '.join(missing)} failed: {last}")
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_hardware() -> tuple[str, int, int]:
    """(node name, CPUs, RealMemory MB) as slurmd itself sees this machine."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    return fields["NodeName"], int(fields["CPUs"]), int(fields["RealMemory"])


class ClusterError(RuntimeError):
    pass


class Cluster:
    """The cluster's folder, ports and daemons. Use as a context manager, or start()/stop()."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="seven-bench-slurm-"))
        self.root.chmod(0o755)  # munged wants every folder above its socket searchable by all
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.node, self.cpus, self.memory_mb = "", 0, 0

    # ------------------------------------------------------------------ layout
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket.2"

    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, sacct, seven-bench) needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf), MARKER: str(self.root)}

    def log(self, name: str, lines: int = 15) -> str:
        path = self.root / "log" / f"{name}.log"
        text = path.read_text(errors="replace") if path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_configs(self) -> None:
        for sub in ("etc", "log", "munge", "mysql", "state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.node, self.cpus, self.memory_mb = node_hardware()
        self.ports = {name: free_port() for name in ("ctld", "slurmd", "dbd", "mysql")}
        r, p, sock = self.root, self.ports, self.munge_socket
        self.conf.write_text(
            f"""ClusterName={CLUSTER}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={p["ctld"]}
SlurmdPort={p["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={p["dbd"]}
AccountingStoragePass={sock}
JobCompType=jobcomp/none
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )
        dbd = self.root / "etc" / "slurmdbd.conf"  # slurmdbd reads it beside SLURM_CONF
        dbd.write_text(
            f"""AuthType=auth/munge
AuthInfo=socket={sock}
DbdAddr=127.0.0.1
DbdHost={self.node}
DbdPort={p["dbd"]}
SlurmUser=root
PidFile={r}/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p["mysql"]}
StorageUser=root
StorageLoc=slurm_acct_db
"""
        )
        dbd.chmod(0o600)

    # ------------------------------------------------------------------ start
    def _spawn(self, name: str, command: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the daemon keeps it
        self.daemons[name] = subprocess.Popen(
            command,
            cwd=self.root,
            env={**os.environ, **self.env()},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the test's process group: a Ctrl-C reaches them through stop()
        )
        out.close()

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float, daemon: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.daemons[daemon]
            if proc.poll() is not None:
                raise ClusterError(f"{daemon} exited ({proc.returncode}) before {what}:\n{self.log(daemon)}")
            if ready():
                return
            time.sleep(0.2)
        raise ClusterError(f"no {what} after {timeout:.0f} s:\n{self.log(daemon)}")

    def _ok(self, command: list[str]) -> subprocess.CompletedProcess[str] | None:
        try:
            done = subprocess.run(command, env={**os.environ, **self.env()}, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return None
        return done if done.returncode == 0 else None

    def _listening(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def start(self, timeout: float = 120) -> float:
        """Start the daemons in order, each once the one it needs answers. Returns the seconds it took."""
        started = time.monotonic()
        self._write_configs()
        r, p = self.root, self.ports
        self._spawn(
            "munged",
            ["munged", "-F", f"--socket={self.munge_socket}", f"--key-file={r}/munge/munge.key",
             f"--log-file={r}/log/munged.log", f"--pid-file={r}/munge/munged.pid",
             f"--seed-file={r}/munge/munged.seed"],
        )  # fmt: skip
        self._spawn(
            "mariadb",
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={r}/mysql",
                f"--socket={r}/mysql.sock",
                f"--port={p['mysql']}",
                "--bind-address=127.0.0.1",
                f"--pid-file={r}/mysql.pid",
                f"--log-error={r}/log/mariadb.log",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
            ],
        )  # fmt: skip  (a 96 MB default redo log takes minutes to create on a slow disk; a test needs no durability)
        self._wait("munge socket", self.munge_socket.exists, 30, "munged")
        self._wait("MariaDB", lambda: self._listening(p["mysql"]), 60, "mariadb")
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait("slurmdbd", lambda: self._listening(p["dbd"]), 60, "slurmdbd")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait("slurmctld", lambda: self._ok(["scontrol", "ping"]) is not None, 60, "slurmctld")
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node])
        self._wait("an idle node", self._node_idle, max(10.0, timeout - (time.monotonic() - started)), "slurmd")
        self._wait("the cluster in the accounting", self._registered, 60, "slurmctld")
        return time.monotonic() - started

    def _node_idle(self) -> bool:
        done = self._ok(["sinfo", "--noheader", "--Node", "--format=%T"])
        return done is not None and done.stdout.strip() == "idle"

    def _registered(self) -> bool:
        done = self._ok(["sacctmgr", "--noheader", "--parsable2", "show", "cluster", "format=cluster"])
        return done is not None and CLUSTER in done.stdout.split()

    # ------------------------------------------------------------------ stop
    def marked_pids(self) -> list[int]:
        """Every live process that carries this cluster's MARKER (the daemons, slurmstepd, the jobs)."""
        tag = f"{MARKER}={self.root}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if tag in environ.split(b"\0") and state != "Z":
                pids.append(int(entry.name))
        return sorted(pids)

    def stop(self, timeout: float = 20) -> list[int]:
        """SIGTERM each daemon by PID (slurmd and slurmctld first), then every other process that carries
        the marker; SIGKILL what is left after `timeout`. Returns the PIDs still alive (should be none)."""
        order = ["slurmd", "slurmctld", "slurmdbd", "mariadb", "munged"]
        for name in order:
            proc = self.daemons.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout / len(order))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.marked_pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (5 if sig == signal.SIGTERM else 2)
            while self.marked_pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        return self.marked_pids()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "up":
        reason = unavailable_reason()
        if reason:
            print(f"slurm_cluster: {reason}", file=sys.stderr)
            return 2
        install_packages()
        cluster = Cluster()
        seconds = cluster.start()
        print(f"# cluster up in {seconds:.0f} s; stop it with: python {argv and __file__} down {cluster.root}")
        for key, value in cluster.env().items():
            print(f"export {key}={value}")
        (cluster.root / "daemon.pids").write_text(" ".join(str(p.pid) for p in cluster.daemons.values()))
        for proc in cluster.daemons.values():  # leave them running: `down` stops them by PID
            proc.returncode = 0
        return 0
    if len(argv) == 2 and argv[0] == "down":
        cluster = Cluster(Path(argv[1]))
        left = cluster.stop()
        print(f"slurm_cluster: stopped; still alive: {left or 'none'}")
        return 1 if left else 0
    print("usage: slurm_cluster.py up | down <cluster folder>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
