"""A camera worker whose decoder crashes natively, for the isolation tests.

Camera names say how: ``segv-*`` dereferences a null pointer (SIGSEGV), ``abort-*``
calls abort() (SIGABRT), as a codec bug in native code would. Others run the real worker.
"""

import ctypes
import os
import time

from edge_component.worker import camera_worker


def worker(conn, camera_json, *args):
    if '"name":"segv-' in camera_json:
        time.sleep(0.3)
        ctypes.string_at(0)  # SIGSEGV in native code
    if '"name":"abort-' in camera_json:
        time.sleep(0.3)
        os.abort()
    camera_worker(conn, camera_json, *args)
