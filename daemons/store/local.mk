# daemons/store: see top-level Makefile.am
