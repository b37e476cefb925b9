"""Imported last by the fork server of hfpipe's worker processes
(:data:`hfpipe.scanning.pool.SERVER_PRELOAD`), so that the server ends without tearing
its interpreter down.

The server only forks workers: it holds no open files to flush and no state to save, and
its workers end by ``os._exit`` (multiprocessing's rule for a forked child) whatever is
registered here. A normal end of an interpreter that imported JAX and SciPy takes about
a third of a second, which the process that made the pools waits for at its own exit
(:func:`hfpipe.scanning.pool._stop_server`). The handler registered here runs first, the
last registered, and ends the process at once.
"""

import atexit
import os

atexit.register(os._exit, 0)
