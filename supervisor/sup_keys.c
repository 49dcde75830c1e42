/*
 * sup_keys — CURVE key files for sup_hb: generation and reading.
 * Format and rules are documented in sup_hb.h (sup_keygen, sup_key_read).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "sup_hb.h"

static int write_new_file(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
        return -e;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = (w == (ssize_t)len) ? 0 : (w < 0 ? errno : EIO);
    if (e == 0 && fsync(fd) < 0)
        e = errno;
    close(fd);
    if (e != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        unlink(path);
        return -e;
    }
    return 0;
}

int sup_keygen(const char *dir, const char *name, char *err, size_t errlen)
{
    char pub[41], sec[41], kpath[512], ppath[512], text[160];
    if (!name[0] || strchr(name, '/')) {
        snprintf(err, errlen, "bad key name \"%s\" (a file name without '/')", name);
        return -EINVAL;
    }
    if (zmq_has("curve") == 0) {
        snprintf(err, errlen, "this libzmq was built without CURVE support");
        return -ENOTSUP;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
        return -EIO;
    }
    snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name);
    snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name);
    if (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0) {
        snprintf(err, errlen, "%s or %s already exists: not overwriting keys", kpath, ppath);
        return -EEXIST;
    }
    snprintf(text, sizeof text, "# hamq CURVE secret key (Z85); keep it 0600\n%s\n", sec);
    int r = write_new_file(kpath, 0600, text, err, errlen);
    if (r < 0)
        return r;
    snprintf(text, sizeof text, "# hamq CURVE public key (Z85) of %s\n%s\n", name, pub);
    r = write_new_file(ppath, 0644, text, err, errlen);
    if (r < 0)
        unlink(kpath);
    return r;
}

int sup_keys_read_all(const char *path, bool secret, char (*keys)[41], int max, char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot open key file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, errlen,
                 "secret key file %s is readable by group or others (mode %03o): "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        return -EPERM;
    }
    char line[256];
    int n = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line + strspn(line, " \t");
        s[strcspn(s, " \t\r\n")] = 0;
        if (!*s || *s == '#')
            continue;
        uint8_t raw[32];
        if (strlen(s) != 40 || !zmq_z85_decode(raw, s)) {
            fclose(f);
            snprintf(err, errlen, "%s:%d: not a Z85 CURVE key (expected 40 characters)", path,
                     lineno);
            return -EINVAL;
        }
        if (n == max) {
            fclose(f);
            snprintf(err, errlen, "%s: more than %d keys", path, max);
            return -E2BIG;
        }
        memcpy(keys[n++], s, 41);
    }
    fclose(f);
    if (n == 0) {
        snprintf(err, errlen, "%s: no key in the file", path);
        return -EINVAL;
    }
    return n;
}

int sup_key_read(const char *path, bool secret, char z85[41], char *err, size_t errlen)
{
    char keys[1][41];
    int r = sup_keys_read_all(path, secret, keys, 1, err, errlen);
    if (r < 0)
        return r;
    memcpy(z85, keys[0], 41);
    return 0;
}
