# tests/: integration tests (numbered scenarios) live here; unit tests are
# listed in the local.mk of the module they test.

# Scratch stores and logs the integration tests leave under the build tree
# (kept after a run for post-mortems; `make clean` removes them).
clean-local:
	-rm -rf tests/tmp tests/tmp-*
