/*
 * store_ha — live.lock, the lock self-test, the writer.lock probe and the epoch
 * raise. See store_ha.h for the files and the rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store_ha.h"
#include "store_int.h"

#define HA_PATH_MAX 4200

static int ha_path(char *buf, size_t len, const char *dir, const char *name, char *err,
                   size_t errlen)
{
    if (!dir || !dir[0])
        return store_errf(err, errlen, -EINVAL, "store: no store directory given");
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
        return store_errf(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
    return 0;
}

static int touch_file(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[HA_PATH_MAX];
    int r = ha_path(path, sizeof path, dir, name, err, errlen);
    if (r < 0)
        return r;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    return 0;
}

int store_ha_prepare(const char *dir, char *err, size_t errlen)
{
    if (!dir || !dir[0])
        return store_errf(err, errlen, -EINVAL, "store: no store directory given");
    struct stat st;
    if (stat(dir, &st) < 0)
        return store_errf(err, errlen, -errno, "%s: store directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return store_errf(err, errlen, -ENOTDIR, "%s: not a directory", dir);
    int r = touch_file(dir, "live.lock", err, errlen);
    if (r == 0)
        r = touch_file(dir, "writer.lock", err, errlen);
    return r;
}

/* A readable name for the file system magics operators meet under a store. */
static const char *fs_name(long type)
{
    static const struct {
        long magic;
        const char *name;
    } t[] = {
        {0xEF53, "ext2/3/4"},       {0x58465342, "xfs"},      {0x9123683E, "btrfs"},
        {0x01021994, "tmpfs"},      {0x6969, "nfs"},          {0xFF534D42, "cifs"},
        {0xFE534D42, "smb2"},       {0x65735546, "fuse"},     {0x794C7630, "overlayfs"},
        {0x47504653, "gpfs"},       {0x0BD00BD0, "lustre"},   {0x00C36400, "ceph"},
        {0x01161970, "gfs2"},       {0x7461636f, "ocfs2"},    {0x2FC12FC1, "zfs"},
        {0x858458f6, "ramfs"},      {0x9fa0, "proc"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].magic == type)
            return t[i].name;
    return "unknown";
}

static int selftest_fail(const char *dir, const char *what, int e, char *err, size_t errlen)
{
    struct statfs sf;
    long type = statfs(dir, &sf) == 0 ? (long)sf.f_type : 0;
    return store_errf(err, errlen, -ENOLCK,
                      "%s: the file system (%s, type 0x%lx) does not honour OFD locks: %s%s%s; "
                      "hamq refuses a shared store whose locks do not work (two nodes could "
                      "write it at once)",
                      dir, fs_name(type), (unsigned long)type, what, e ? ": " : "",
                      e ? strerror(e) : "");
}

int store_ha_lock_selftest(const char *dir, char *err, size_t errlen)
{
    char path[HA_PATH_MAX], name[64];
    snprintf(name, sizeof name, ".locktest.%ld", (long)getpid());
    int r = ha_path(path, sizeof path, dir, name, err, errlen);
    if (r < 0)
        return r;
    int a = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (a < 0)
        return store_errf(err, errlen, -errno, "%s: cannot create the lock test file: %s",
                          path, strerror(errno));
    int b = open(path, O_RDWR | O_CLOEXEC);
    unlink(path); /* both descriptions stay usable */
    if (b < 0) {
        r = store_errf(err, errlen, -errno, "%s: cannot reopen: %s", path, strerror(errno));
        close(a);
        return r;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    struct flock again = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(a, F_OFD_SETLK, &fl) < 0)
        r = selftest_fail(dir, "taking a write lock failed", errno, err, errlen);
    else if (fcntl(b, F_OFD_GETLK, &q) < 0)
        r = selftest_fail(dir, "F_OFD_GETLK failed", errno, err, errlen);
    else if (q.l_type != F_WRLCK)
        r = selftest_fail(dir, "a second open file description does not see the lock", 0, err,
                          errlen);
    else if (fcntl(b, F_OFD_SETLK, &again) == 0)
        r = selftest_fail(dir, "a second open file description got the same lock", 0, err,
                          errlen);
    else if (errno != EAGAIN && errno != EACCES)
        r = selftest_fail(dir, "the conflicting lock attempt failed oddly", errno, err, errlen);
    close(b);
    close(a);
    return r;
}

int store_ha_live_open(const char *dir, char *err, size_t errlen)
{
    char path[HA_PATH_MAX];
    int r = ha_path(path, sizeof path, dir, "live.lock", err, errlen);
    if (r < 0)
        return r;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    return fd;
}

static int live_lock(int fd, int cmd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, cmd, &fl) < 0)
        return errno == EACCES ? -EAGAIN : -errno;
    return 0;
}

int store_ha_live_try(int fd) { return live_lock(fd, F_OFD_SETLK, F_WRLCK); }
int store_ha_live_wait(int fd) { return live_lock(fd, F_OFD_SETLKW, F_WRLCK); }
int store_ha_live_release(int fd) { return live_lock(fd, F_OFD_SETLK, F_UNLCK); }

int store_ha_writer_held(const char *dir, pid_t *pid, char *err, size_t errlen)
{
    char path[HA_PATH_MAX];
    *pid = 0;
    int r = ha_path(path, sizeof path, dir, "writer.lock", err, errlen);
    if (r < 0)
        return r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    }
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_GETLK, &q) < 0) {
        r = store_errf(err, errlen, -errno, "%s: F_OFD_GETLK: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    if (q.l_type != F_UNLCK) {
        char who[32];
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = 0;
        *pid = (pid_t)strtol(who, NULL, 10);
        r = 1;
    }
    close(fd);
    return r;
}

int store_ha_read_epoch(const char *dir, uint64_t *epoch, char *err, size_t errlen)
{
    char path[HA_PATH_MAX];
    int r = ha_path(path, sizeof path, dir, "store.epoch", err, errlen);
    if (r < 0)
        return r;
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        *epoch = 1; /* store_open creates it with 1 */
        return 0;
    }
    return store_read_epoch(dir, epoch, err, errlen);
}

int store_ha_raise_epoch(const char *dir, uint64_t floor, uint64_t *out, char *err,
                         size_t errlen)
{
    uint64_t cur;
    int r = store_ha_read_epoch(dir, &cur, err, errlen);
    if (r < 0)
        return r;
    uint64_t next = (cur > floor ? cur : floor) + 1;
    char tmp[HA_PATH_MAX], fin[HA_PATH_MAX], text[32];
    if ((r = ha_path(fin, sizeof fin, dir, "store.epoch", err, errlen)) < 0)
        return r;
    snprintf(tmp, sizeof tmp, "%s/.store.epoch.%ld.tmp", dir, (long)getpid());
    int n = snprintf(text, sizeof text, "%" PRIu64 "\n", next);
    /* claim: the new value, durable under a temporary name */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    if (write(fd, text, (size_t)n) != n)
        r = store_errf(err, errlen, -EIO, "%s: cannot write: %s", tmp, strerror(errno));
    else if (fsync(fd) < 0)
        r = store_errf(err, errlen, -errno, "%s: fsync: %s", tmp, strerror(errno));
    close(fd);
    /* commit: the rename, made durable by the directory fsync */
    if (r == 0 && rename(tmp, fin) < 0)
        r = store_errf(err, errlen, -errno, "%s: rename to %s: %s", tmp, fin, strerror(errno));
    if (r == 0 && (r = fsync_dir(dir)) < 0)
        store_errf(err, errlen, r, "%s: fsync of the directory: %s", dir, strerror(-r));
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    *out = next;
    return 0;
}
