"""Running druse from the referee tests: a command that must exit with a given status."""
import subprocess
import sys


def run(cmd, expect=0, timeout=300):
    """Runs cmd; on another exit status prints it with both streams and exits 1 (the test
    fails). Returns stderr, where druse writes its progress and messages."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != expect:
        print(f"FAIL: {' '.join(cmd)} exited {p.returncode}, expected {expect}\n"
              f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        sys.exit(1)
    return p.stderr
