"""Root conftest. The plugin and the stage fixtures are pytest11 entry points
(pyproject.toml), loaded in every pytest run where the package is installed; naming
them here too (a no-op then) keeps a plain checkout without ``pip install`` working."""

pytest_plugins = ["harness.plugin", "stages.fixtures"]
