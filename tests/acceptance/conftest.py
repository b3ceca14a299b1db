from tests.integration.world import world  # noqa: F401 - a fixture
