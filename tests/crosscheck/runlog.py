"""Reading the log of a running `anycast6 run`."""

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
