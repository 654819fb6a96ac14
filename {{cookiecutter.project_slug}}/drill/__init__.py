"""`make drill`: the high-availability drill (kill -9 and SIGTERM of real workers)."""
