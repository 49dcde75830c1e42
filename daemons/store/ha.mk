# daemons/store/ha.mk: the store's HA module (live.lock, lock self-test, writer.lock
# probe, epoch raise) used by hamq-supervisor. See daemons/store/store_ha.h.
noinst_LIBRARIES += daemons/store/libhamqstoreha.a
daemons_store_libhamqstoreha_a_SOURCES = daemons/store/store_ha.c daemons/store/store_ha.h
HAMQ_STORE_HA_LIBS = daemons/store/libhamqstoreha.a $(HAMQ_STORE_LIBS)
