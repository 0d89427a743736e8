"""Running `anycast6 run` in a test: starting it, reading its log, driving it with
`anycast6 ctl`, stopping it."""

import signal
import subprocess
import time


def wait_for(proc, marker, timeout=30):
    """Reads stderr lines until one contains `marker`; returns the lines read."""
    lines = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in stderr:\n{''.join(lines)}")


def wait_started(proc, timeout=30):
    """Reads the log until `event=started`; returns the address of the Prometheus listener
    (`event=metrics_listening`, None without one) and the lines read."""
    lines = wait_for(proc, "event=started", timeout)
    metrics = next((l.split("addr=")[1].split()[0] for l in lines if "event=metrics_listening" in l), None)
    return metrics, lines


def start_with_metrics(anycast6_bin, cfg, duration):
    """Starts `anycast6 run` with the configuration `cfg` (which has `admin.metrics`);
    returns the process and its Prometheus address once it has started."""
    proc = subprocess.Popen([str(anycast6_bin), "run", "--config", str(cfg), "--duration", str(duration)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, lines = wait_started(proc)
    assert metrics, "".join(lines)
    return proc, metrics


def stop(proc):
    """Stops it as an operator would (SIGINT) and checks that it exited cleanly."""
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 0


def ctl_for(anycast6_bin, socket):
    """`anycast6 ctl --socket SOCKET ARGS...`; with `check` (the default) it must succeed."""

    def ctl(*args, check=True):
        r = subprocess.run([str(anycast6_bin), "ctl", "--socket", str(socket), *args],
                           capture_output=True, text=True, timeout=20)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    return ctl
