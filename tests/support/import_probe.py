"""A `vq` process that reports, at exit, the top-level packages (and vq_core modules) it loaded."""

from __future__ import annotations

#: Runs the vq script's entry point with the arguments after ``-c PROBE``, then writes
#: the top-level packages loaded, and vq_core's modules by their full names (a JSON
#: list), to ``$PROBE_OUT`` when the process ends
#: (after click's exit, or a worker's graceful stop). ``$PROBE_PREIMPORT`` loads
#: packages first, so a test can show that the report sees what is loaded.
PROBE = """
import atexit, json, os, sys

for name in os.environ.get("PROBE_PREIMPORT", "").split():
    __import__(name)

def _report():
    with open(os.environ["PROBE_OUT"], "w") as out:
        top = {m.split(".")[0] for m in sys.modules}
        json.dump(sorted(top | {m for m in sys.modules if m.startswith("vq_core.")}), out)

atexit.register(_report)
sys.argv = ["vq", *sys.argv[1:]]
from vq_core.cli.main import main
main()
"""
