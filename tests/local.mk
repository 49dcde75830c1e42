# tests/: integration tests (numbered scenarios) live here; unit tests are
# listed in the local.mk of the module they test.
