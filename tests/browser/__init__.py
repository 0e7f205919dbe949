"""Browser tests (run by `make test-browser`, left out of `make test`)."""
