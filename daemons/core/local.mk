# daemons/core: see top-level Makefile.am
