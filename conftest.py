"""Root conftest. The plugin and the stage fixtures are pytest11 entry points
(pyproject.toml), loaded in every pytest run where the package is installed; naming
them here too is a no-op then, and says where a checkout's runs get them. (A checkout
needs its install, ``make setup`` or ``pip install -e .``: ``harness.stages`` is the
``stages/`` folder through the install's package mapping.)"""

pytest_plugins = ["harness.plugin", "harness.stages.fixtures"]
