"""The harness's own tests. Fast ones need no VM; those marked ``vm`` boot QEMU."""
