/* See store_testlib.h. */
#define _XOPEN_SOURCE 700
#include "store_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "hamq/log.h"

void st_mkdtemp(char *out, size_t n, const char *tag, bool shm)
{
    char root[4096];
    const char *b = getenv("HAMQ_BUILDDIR");
    if (shm)
        snprintf(root, sizeof root, "/dev/shm");
    else if (b && *b)
        snprintf(root, sizeof root, "%s/tests/store", b);
    else
        snprintf(root, sizeof root, "/var/tmp");
    mkdir(root, 0755);
    struct statfs sf;
    if (!shm && statfs(root, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
        snprintf(root, sizeof root, "/var/tmp");
    snprintf(out, n, "%s/hamq-%s-XXXXXX", root, tag);
    if (!mkdtemp(out)) {
        fprintf(stderr, "mkdtemp %s: %s\n", out, strerror(errno));
        abort();
    }
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

void st_rmrf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

size_t st_body_len(uint64_t id, size_t max)
{
    uint64_t x = id * 0x9E3779B97F4A7C15ull;
    return max ? (size_t)((x >> 20) % (max + 1)) : 0;
}

void st_body(uint64_t id, uint8_t *buf, size_t len)
{
    uint64_t x = id ^ 0xabcdef1234567ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

int st_open(const char *dir, uint64_t seg, struct store **s, char *err, size_t errlen)
{
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = seg;
    o.write_buffer_size = 64 * 1024;
    return store_open(&o, s, err, errlen);
}

void st_seg_path(char *out, size_t n, const char *dir, uint64_t seq)
{
    snprintf(out, n, "%s/journal/%016" PRIx64 ".seg", dir, seq);
}

void st_quiet_logs(void)
{
    log_init("store-test", LOG_TARGET_STDERR);
    if (!getenv("HAMQ_TEST_VERBOSE"))
        log_set_max_priority(LOG_CRIT);
}

void st_poke(const char *path, uint64_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || pwrite(fd, bytes, n, (off_t)off) != (ssize_t)n)
        abort();
    close(fd);
}

void st_peek(const char *path, uint64_t off, void *bytes, size_t n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, bytes, n, (off_t)off) != (ssize_t)n)
        abort();
    close(fd);
}

double st_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
