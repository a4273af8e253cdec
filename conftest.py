"""Root conftest: loads the gmi-harness pytest plugin and the build-stage fixtures."""

pytest_plugins = ["harness.plugin", "stages.fixtures", "harness.clone", "harness.hyperv.janitor"]
