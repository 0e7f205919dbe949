"""A student kernel the grader can time out, interrupt, restart and always kill.

The kernel is launched by the grader itself (not by a KernelManager) so that it gets
the sandbox's command (bubblewrap or not), environment, working folder, resource
limits and own session. It talks over ZMQ `ipc` sockets inside the sandbox, which
also works when the kernel has no network. Only the shell channel's execute_reply
is read, and only to learn "the code raised" (or not): the grader trusts nothing
the kernel prints, displays or returns. Its IOPub output is never even subscribed to:
no iopub socket exists on this side, so the kernel's PUB socket drops every message
and a flood of output cannot fill the grader's memory (tests check the socket's absence).

See: cnnkit/instructor/grade.py
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from cnnkit.instructor.sandbox import Sandbox, kill_tagged

__all__ = ["Kernel", "RunResult"]

MAX_MESSAGE = 300


@dataclass
class RunResult:
    status: str                       # "ok", "error", "timeout", "dead"
    ename: str = ""
    evalue: str = ""


def _clean(text, limit: int = MAX_MESSAGE) -> str:
    """Kernel-produced text made safe to show: str, printable, short."""
    text = text if isinstance(text, str) else ""
    text = "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in text)
    return text[:limit]


class Kernel:
    """One sandboxed IPython kernel; restarts itself when it dies or hangs."""

    def __init__(self, sandbox: Sandbox, token: str, start_timeout: float = 120):
        self.sandbox, self.token, self.start_timeout = sandbox, token, start_timeout
        self.proc = self.kc = None
        self.generation = 0           # incremented by every restart: the kernel's state is gone
        self.start()

    def start(self) -> None:
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file
        conn_dir = self.sandbox.home / f".k{self.generation}"
        conn_dir.mkdir(mode=0o755)
        if self.sandbox.level == "uid":
            os.chown(conn_dir, 65534, 65534)
        fname, _ = write_connection_file(str(self.sandbox.root / f"kernel-{self.generation}.json"),
                                         ip=str(conn_dir / "s"), transport="ipc")
        os.chmod(fname, 0o644)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", fname, "--HistoryManager.enabled=False",
                "--IPKernelApp.matplotlib=None"]
        self.proc = subprocess.Popen(self.sandbox.command(argv), cwd=self.sandbox.notebooks,
                                     env=self.sandbox.env(self.token), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=self.sandbox.preexec())
        self.kc = BlockingKernelClient()
        self.kc.load_connection_file(fname)
        self.kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=True)
        deadline = time.monotonic() + self.start_timeout
        msg_id = self.kc.kernel_info()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the grading kernel exited at start (code {self.proc.returncode})")
            try:
                msg = self.kc.get_shell_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return
        raise RuntimeError("the grading kernel did not start in time")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the kernel and every process it started (its session, its token)."""
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        kill_tagged(self.token)

    def restart(self) -> None:
        self.kill()
        self.generation += 1
        self.start()

    def run(self, code: str, timeout: float) -> RunResult:
        """Execute code; finished when the shell channel's execute_reply arrives."""
        if timeout <= 0:
            return RunResult("timeout", "TimeoutError", "no time left in the budget")
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.kc.get_shell_msg(timeout=0.1)
            except queue.Empty:
                if not self.alive():
                    return RunResult("dead", "DeadKernelError", "the kernel died (exit, crash or out of memory)")
                if time.monotonic() > deadline:
                    return self._after_timeout()
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg.get("content") or {}
            if content.get("status") == "ok":
                return RunResult("ok")
            return RunResult("error", _clean(content.get("ename"), 100), _clean(content.get("evalue")))

    def _after_timeout(self) -> RunResult:
        """Interrupt (control channel); if the kernel does not answer within 5 s, restart it."""
        try:
            self.kc.control_channel.send(self.kc.session.msg("interrupt_request", {}))
        except Exception:
            pass
        if self.ping(5.0):
            return RunResult("timeout", "TimeoutError", "time limit exceeded")
        self.restart()
        return RunResult("timeout", "TimeoutError", "time limit exceeded; the kernel was restarted")

    def ping(self, timeout: float) -> bool:
        """Drain pending replies; True if the kernel answers a no-op within `timeout`."""
        msg_id = self.kc.execute("", silent=True, store_history=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_shell_msg(timeout=0.1)
            except queue.Empty:
                if not self.alive():
                    return False
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False
