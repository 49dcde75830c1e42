# units: see top-level Makefile.am
