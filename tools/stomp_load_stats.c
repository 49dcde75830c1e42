/*
 * stomp_load_stats — what hamq-stomp-load measures besides messages: a
 * log-linear latency histogram, the CPU time of broker processes read from
 * /proc/<pid>/stat (utime + stime of the whole thread group), and the raw
 * disk reference (4 KiB O_DIRECT pwrite + fdatasync), so a broker's receipt
 * latency can be compared with what the disk itself allows in the same run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "stomp_load.h"

uint64_t sl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Bucket index: values < SUB map to themselves; above, the top 5 bits after
 * the leading one pick the sub-bucket of the value's power of two. */
static size_t hist_index(uint64_t v)
{
    if (v < SL_HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 5u; /* SL_HIST_SUB == 1 << 5 */
    size_t i = (size_t)(msb - 4u) * SL_HIST_SUB + (size_t)((v >> shift) & (SL_HIST_SUB - 1));
    size_t last = (size_t)SL_HIST_BITS * SL_HIST_SUB - 1;
    return i > last ? last : i;
}

static uint64_t hist_upper(size_t i)
{
    if (i < SL_HIST_SUB)
        return i;
    unsigned msb = (unsigned)(i / SL_HIST_SUB) + 4u;
    uint64_t sub = i % SL_HIST_SUB;
    unsigned shift = msb - 5u;
    return ((uint64_t)1 << msb) + ((sub + 1) << shift) - 1;
}

void sl_hist_add(struct sl_hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->n++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

uint64_t sl_hist_quantile(const struct sl_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < (size_t)SL_HIST_BITS * SL_HIST_SUB; i++) {
        seen += h->b[i];
        if (seen > want) {
            uint64_t u = hist_upper(i);
            return u > h->max_ns ? h->max_ns : u;
        }
    }
    return h->max_ns;
}

/* utime + stime (fields 14 and 15) of /proc/pid/stat; the comm field may hold
 * spaces and parentheses, so parsing starts after its last ')'. */
static int read_ticks(pid_t pid, uint64_t *ticks, char *name, size_t name_len, int *ppidp)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    buf[n] = '\0';
    char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
    if (!open_p || !close_p || close_p < open_p)
        return -EIO;
    if (name) {
        size_t l = (size_t)(close_p - open_p - 1);
        if (l >= name_len)
            l = name_len - 1;
        memcpy(name, open_p + 1, l);
        name[l] = '\0';
    }
    unsigned long long ut = 0, st = 0;
    int ppid = 0;
    /* after ") ": state(3) ppid(4) pgrp sess tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime */
    if (sscanf(close_p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid, &ut,
               &st) != 3)
        return -EIO;
    *ticks = ut + st;
    if (ppidp)
        *ppidp = ppid;
    return 0;
}

int sl_procs_add_pid(struct sl_procs *ps, pid_t pid)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i].pid == pid)
            return 0;
    if (ps->n == SL_MAX_PIDS)
        return -ENOSPC;
    struct sl_proc *p = &ps->p[ps->n];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    int r = read_ticks(pid, &p->ticks0, p->name, sizeof p->name, NULL);
    if (r < 0)
        return r == -ENOENT ? -ESRCH : r;
    ps->n++;
    return 0;
}

/* Every process whose comm is name (name != NULL) or whose parent is ppid. */
static int add_matching(struct sl_procs *ps, const char *name, pid_t ppid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    int found = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char comm[32];
        uint64_t t = 0;
        int pp;
        if (read_ticks((pid_t)pid, &t, comm, sizeof comm, &pp) < 0)
            continue;
        bool match = name ? strcmp(comm, name) == 0 : pp == (int)ppid;
        if (match && sl_procs_add_pid(ps, (pid_t)pid) == 0)
            found++;
    }
    closedir(d);
    return found;
}

int sl_procs_add_name(struct sl_procs *ps, const char *name)
{
    return add_matching(ps, name, 0);
}

int sl_procs_add_tree(struct sl_procs *ps, pid_t pid)
{
    int r = sl_procs_add_pid(ps, pid);
    if (r < 0)
        return r;
    size_t from = ps->n - 1;
    /* Children and grandchildren (a broker's workers, Erlang's helpers). */
    for (int depth = 0; depth < 2; depth++) {
        size_t to = ps->n;
        for (size_t i = from; i < to; i++) {
            r = add_matching(ps, NULL, ps->p[i].pid);
            if (r < 0)
                return r;
        }
        from = to;
    }
    return 0;
}

void sl_procs_sample(struct sl_procs *ps, bool after)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct sl_proc *p = &ps->p[i];
        uint64_t t = 0;
        if (read_ticks(p->pid, &t, NULL, 0, NULL) < 0) {
            p->gone = true;
            t = after ? p->ticks0 : 0;
        }
        if (after)
            p->ticks1 = t;
        else
            p->ticks0 = t;
    }
}

double sl_self_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int raw_loop(int fd, const void *blk, unsigned n, struct sl_hist *out)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t t0 = sl_now_ns();
        if (pwrite(fd, blk, 4096, (off_t)i * 4096) != 4096)
            return errno ? -errno : -EIO;
        if (fdatasync(fd) < 0)
            return -errno;
        sl_hist_add(out, sl_now_ns() - t0);
    }
    return 0;
}

int sl_raw_probe(const char *dir, unsigned n, bool overwrite, struct sl_hist *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/hamq-stomp-load-raw.XXXXXX", dir);
    int tmp = mkstemp(path);
    if (tmp < 0)
        return -errno;
    close(tmp);
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    int r = fd < 0 ? -errno : 0;
    void *blk = NULL;
    if (r == 0 && posix_memalign(&blk, 4096, 4096) != 0)
        r = -ENOMEM;
    if (r == 0) {
        memset(blk, 0x5a, 4096);
        struct sl_hist scratch;
        memset(&scratch, 0, sizeof scratch);
        if (overwrite)
            r = raw_loop(fd, blk, n, &scratch);
        if (r == 0)
            r = raw_loop(fd, blk, n, out);
    }
    free(blk);
    if (fd >= 0)
        close(fd);
    unlink(path);
    return r;
}
