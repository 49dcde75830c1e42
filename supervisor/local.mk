# supervisor: see top-level Makefile.am
