"""`make drill`: the high-availability drill (kill -9 and SIGTERM of real workers).

ha.py       the drill, the same for every sample
case.py     `DrillCase`: what it needs to know about a sample (tests/<sample>/drill_case.py)
cluster.py  dev server, Redis and worker processes on this machine (also bench/scale.py's)
"""
