from tests.e2e.conftest import live_server_proc  # noqa: F401  (a real Daphne worker on the test database)
