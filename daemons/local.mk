# daemons: see top-level Makefile.am
