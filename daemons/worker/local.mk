# daemons/worker: see top-level Makefile.am
