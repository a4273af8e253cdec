"""Root conftest: loads the gmi-harness pytest plugin and the build-stage fixtures."""

pytest_plugins = ["harness.plugin", "stages.fixtures", "stages.s7_clone", "harness.backends.hyperv.janitor"]
