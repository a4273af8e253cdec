"""This machine: the foundation the rest of the harness stands on.

- :mod:`~harness.host.tools`: its tools, free space and ports, file hashes, process
  groups, and host-wide locks for work that xdist workers or two runs must not do at once;
- :mod:`~harness.host.hostos`: what differs between the operating systems the harness
  runs on (Linux, Windows), one object chosen once;
- :mod:`~harness.host.cache`: verdicts about this host that hold until it reboots;
- :mod:`~harness.host.runmarker`: a run's claim on its scratch folder;
- :mod:`~harness.host.clock`: the wall clock, in one place.
"""
