from tests.integration.pg import pg_url  # noqa: F401 - a fixture
from tests.integration.world import world  # noqa: F401 - a fixture
