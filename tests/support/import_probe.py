"""A `vq` process that reports, at exit, the top-level packages it loaded."""

from __future__ import annotations

#: Runs the vq script's entry point with the arguments after ``-c PROBE``, then writes
#: the top-level packages loaded (a JSON list) to ``$PROBE_OUT`` when the process ends
#: (after click's exit, or a worker's graceful stop). ``$PROBE_PREIMPORT`` loads
#: packages first, so a test can show that the report sees what is loaded.
PROBE = """
import atexit, json, os, sys

for name in os.environ.get("PROBE_PREIMPORT", "").split():
    __import__(name)

def _report():
    with open(os.environ["PROBE_OUT"], "w") as out:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), out)

atexit.register(_report)
sys.argv = ["vq", *sys.argv[1:]]
from vq_core.cli.main import main
main()
"""
