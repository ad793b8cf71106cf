"""A throwaway local PostgreSQL server for tests, the benchmark and the chaos campaign.

:class:`LocalServer` runs ``initdb`` and ``pg_ctl`` from the machine's PostgreSQL server
binaries into a fresh temporary directory, listening on a Unix socket in that directory only
(``listen_addresses=''``: nothing on the network). ``initdb`` refuses to run as root, so as
root the directory is given to the ``postgres`` user and every server command runs through
``runuser -u postgres --``. About a second to start; :meth:`LocalServer.stop` stops it and
removes the directory.

Command line (used by ``ci/test``)::

    python -m tradestore_harness.pg_server start DIR   # prints the DSN
    python -m tradestore_harness.pg_server stop DIR
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

SERVER_USER = "postgres"


class ServerUnavailable(RuntimeError):
    """No local PostgreSQL server can be started here; the message says why and what to install."""


def find_bindir() -> str | None:
    """The directory of ``initdb`` and ``pg_ctl``: the newest Debian layout, else ``$PATH``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for bindir in reversed(candidates):
        if os.access(os.path.join(bindir, "initdb"), os.X_OK):
            return bindir
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def _as_root() -> bool:
    return os.geteuid() == 0


class LocalServer:
    """One PostgreSQL cluster in ``root`` (a new temporary directory by default)."""

    def __init__(self, root: str | None = None) -> None:
        self.bindir = find_bindir()
        if self.bindir is None:
            raise ServerUnavailable("no PostgreSQL server binaries (initdb, pg_ctl); install them with "
                                    "`apt-get install -y postgresql`")
        if _as_root():
            try:
                import pwd

                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise ServerUnavailable(f"running as root and there is no {SERVER_USER!r} user to run initdb as") from None
            if shutil.which("runuser") is None:
                raise ServerUnavailable("running as root and `runuser` is missing (initdb refuses root)")
        self.root = root or tempfile.mkdtemp(prefix="tradestore-pg.")
        os.makedirs(self.root, exist_ok=True)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        if _as_root():
            shutil.chown(self.root, SERVER_USER, SERVER_USER)

    @property
    def dsn(self) -> str:
        return f"host={self.root} port=5432 dbname=postgres user={SERVER_USER}"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [os.path.join(self.bindir, command[0]), *command[1:]]
        if _as_root():
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True)
        if check and done.returncode != 0:
            tail = ""
            if os.path.exists(self.log):
                with open(self.log, errors="replace") as handle:
                    tail = handle.read()[-2000:]
            raise ServerUnavailable(f"{' '.join(command[:2])} failed ({done.returncode}): "
                                    f"{done.stderr.strip() or done.stdout.strip()}\n{tail}")
        return done

    def start(self) -> str:
        """Create the cluster on first use, start the server, return the DSN."""
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", SERVER_USER, "-E", "UTF8", "--no-sync")
        # fsync stays on (the default): the database-fault scenarios rely on real durability.
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start",
                  "-o", f"-c listen_addresses='' -k {self.root} -c max_connections=200")
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean), or ``immediate`` (like a crash: recovery on start)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        if os.path.isdir(self.data):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradestore_harness.pg_server",
                                     description="Start or stop a throwaway local PostgreSQL server.")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("dir", help="the server's directory (created by start, removed by stop)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            print(LocalServer(args.dir).start())
        else:
            LocalServer(args.dir).destroy()
    except ServerUnavailable as exc:
        print(f"pg_server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
