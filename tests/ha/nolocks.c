/*
 * nolocks.so — LD_PRELOAD shim for the HA tests: makes the OFD lock commands of
 * fcntl() succeed without locking anything and F_OFD_GETLK report "unlocked",
 * which is what a shared file system that ignores locks does. Used to check that
 * hamq-supervisor's lock self-test refuses such a store (t13).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>

typedef int (*fcntl_fn)(int, int, ...);

static int shim(const char *sym, int fd, int cmd, void *arg)
{
    if (cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW)
        return 0;
    if (cmd == F_OFD_GETLK) {
        ((struct flock *)arg)->l_type = F_UNLCK;
        return 0;
    }
    fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, sym);
    return real ? real(fd, cmd, arg) : -1;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shim("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shim("fcntl64", fd, cmd, arg);
}
