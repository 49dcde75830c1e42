/*
 * config — see include/hamq/config.h.
 *
 * One table describes every key: section, name, type, where it lives in the
 * struct, its bounds and its default as text. Defaults, the file parser and
 * command-line overrides all go through the same config_set(), so a default
 * can never be a value the parser would refuse, and a flag is checked like a
 * key in the file.
 */
#include "hamq/config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum cfg_type { T_STR, T_PATH, T_BOOL, T_INT, T_SIZE, T_ENUM, T_MS };

struct cfg_key {
    const char *section;
    const char *name;
    enum cfg_type type;
    size_t offset;
    size_t size;           /* of the field, for strings */
    int64_t min, max;      /* ints, sizes, durations */
    const char *const *names; /* enums, NULL-terminated, index = value */
    const char *def;       /* NULL = no default (see config_require) */
};

static const char *const sync_names[] = {"fdatasync", "dsync", NULL};
static const char *const role_names[] = {"primary", "backup", NULL};
static const char *const activation_names[] = {"exec", "systemd", NULL};
static const char *const level_names[] = {"err", "warning", "notice", "info", "debug", NULL};

#define F(field) offsetof(struct hamq_config, field), sizeof(((struct hamq_config *)0)->field)
#define KIB (1024LL)
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const struct cfg_key keys[] = {
    {"broker", "instance", T_STR, F(instance), 0, 0, NULL, "hamq"},
    {"broker", "store", T_PATH, F(store), 0, 0, NULL, "/var/lib/hamq/store"},
    {"broker", "workers", T_INT, F(workers), 1, 64, NULL, "2"},
    {"broker", "port_offset", T_INT, F(port_offset), 0, 1000, NULL, "0"},
    {"broker", "port", T_INT, F(port_all), 0, 65535, NULL, "61616"},
    {"broker", "stomp_port", T_INT, F(port_stomp), 0, 65535, NULL, "61613"},
    {"broker", "amqp_port", T_INT, F(port_amqp), 0, 65535, NULL, "5672"},
    {"broker", "bind", T_STR, F(bind), 0, 0, NULL, "0.0.0.0"},
    {"broker", "auto_create", T_BOOL, F(auto_create), 0, 0, NULL, "true"},
    {"broker", "max_message_size", T_SIZE, F(max_message_size), 1 * KIB, 2 * GIB, NULL, "100M"},
    {"broker", "ring_size", T_SIZE, F(ring_size), 64 * KIB, 1 * GIB, NULL, "4M"},
    {"broker", "max_memory", T_SIZE, F(max_memory), 1 * MIB, 1024 * GIB, NULL, "1G"},
    {"broker", "address_max_memory", T_SIZE, F(address_max_memory), 0, 1024 * GIB, NULL, "0"},
    {"broker", "id_cache_size", T_INT, F(id_cache_size), 0, 10000000, NULL, "20000"},
    {"broker", "default_prefetch", T_INT, F(default_prefetch), 1, 1000000, NULL, "1000"},
    {"broker", "max_delivery_attempts", T_INT, F(max_delivery_attempts), 0, 1000000, NULL, "10"},
    {"broker", "dead_letter_address", T_STR, F(dead_letter_address), 0, 0, NULL, "DLQ"},
    {"broker", "log_level", T_ENUM, F(log_level), 0, 0, level_names, "info"},

    {"journal", "segment_size", T_SIZE, F(segment_size), 1 * MIB, 1 * GIB, NULL, "10M"},
    {"journal", "write_buffer_size", T_SIZE, F(write_buffer_size), 64 * KIB, 64 * MIB, NULL, "1M"},
    {"journal", "sync", T_ENUM, F(sync_mode), 0, 0, sync_names, "fdatasync"},
    {"journal", "checkpoint_bytes", T_SIZE, F(checkpoint_bytes), 1 * MIB, 64 * GIB, NULL, "64M"},
    {"journal", "compact_min_live_percent", T_INT, F(compact_min_live_percent), 0, 100, NULL, "30"},
    {"journal", "allow_truncate_corrupt", T_BOOL, F(allow_truncate_corrupt), 0, 0, NULL, "false"},
    {"journal", "large_message_size", T_SIZE, F(large_message_size), 0, 1 * GIB, NULL, "0"},

    {"ha", "node_id", T_STR, F(node_id), 0, 0, NULL, NULL},
    {"ha", "role", T_ENUM, F(role), 0, 0, role_names, "primary"},
    {"ha", "priority", T_INT, F(priority), 0, 255, NULL, "100"},
    {"ha", "listen", T_STR, F(ha_listen), 0, 0, NULL, "tcp://0.0.0.0:61620"},
    {"ha", "peers", T_STR, F(peers), 0, 0, NULL, ""},
    {"ha", "heartbeat_interval", T_MS, F(heartbeat_interval_ms), 10, 60000, NULL, "100ms"},
    {"ha", "heartbeat_timeout", T_MS, F(heartbeat_timeout_ms), 50, 600000, NULL, "1s"},
    {"ha", "allow_failback", T_BOOL, F(allow_failback), 0, 0, NULL, "false"},
    {"ha", "activation", T_ENUM, F(activation), 0, 0, activation_names, "exec"},
    {"ha", "vip", T_STR, F(vip), 0, 0, NULL, ""},
    {"ha", "vip_interface", T_STR, F(vip_interface), 0, 0, NULL, ""},
    {"ha", "curve_secret_key_file", T_STR, F(curve_secret_key_file), 0, 0, NULL, ""},
    {"ha", "curve_peer_public_key_file", T_STR, F(curve_peer_public_key_file), 0, 0, NULL, ""},

    {"security", "allow_anonymous", T_BOOL, F(allow_anonymous), 0, 0, NULL, "true"},
    {"security", "users_file", T_STR, F(users_file), 0, 0, NULL, ""},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= 128, "set_mask holds 128 bits");

static const struct cfg_key *find_key(const char *section, const char *name, int *idx)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
            *idx = (int)i;
            return &keys[i];
        }
    return NULL;
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    while (*s == ' ')
        s++;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -ERANGE;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mult = KIB; break;
        case 'm': case 'M': mult = MIB; break;
        case 'g': case 'G': mult = GIB; break;
        default: return -EINVAL;
        }
        end++;
        if (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0)
            end += strlen(end);
        if (*end)
            return -EINVAL;
    }
    if (v > UINT64_MAX / mult)
        return -ERANGE;
    *out = v * mult;
    return 0;
}

static int parse_ms(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || v > INT_MAX)
        return -ERANGE;
    if (*end == 0 || strcmp(end, "ms") == 0)
        *out = v;
    else if (strcmp(end, "s") == 0 && v <= INT_MAX / 1000)
        *out = v * 1000;
    else
        return -EINVAL;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return -EINVAL;
}

static void accepted(const struct cfg_key *k, char *buf, size_t len)
{
    size_t off = 0;

    switch (k->type) {
    case T_STR:
        snprintf(buf, len, "text shorter than %zu bytes", k->size);
        break;
    case T_PATH:
        snprintf(buf, len, "an absolute path shorter than %zu bytes", k->size);
        break;
    case T_BOOL:
        snprintf(buf, len, "true, false, yes, no, on, off, 1, 0");
        break;
    case T_INT:
        snprintf(buf, len, "an integer %" PRId64 "..%" PRId64, k->min, k->max);
        break;
    case T_SIZE:
        snprintf(buf, len, "a size in bytes with an optional K, M or G suffix, %" PRId64
                 "..%" PRId64 " bytes", k->min, k->max);
        break;
    case T_MS:
        snprintf(buf, len, "a duration such as 250ms or 2s, %" PRId64 "ms..%" PRId64 "ms",
                 k->min, k->max);
        break;
    case T_ENUM:
        for (int i = 0; k->names[i] && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", k->names[i]);
        break;
    }
}

static int set_value(void *base, const struct cfg_key *k, const char *v, const char **why)
{
    char *field = (char *)base + k->offset;
    int64_t n;
    uint64_t u;
    char *end;
    bool b;

    *why = "";
    switch (k->type) {
    case T_PATH:
        if (v[0] != '/')
            return *why = "not an absolute path", -EINVAL;
        /* fall through */
    case T_STR:
        if (strlen(v) >= k->size)
            return *why = "too long", -EINVAL;
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case T_BOOL:
        if (parse_bool(v, &b) < 0)
            return *why = "not a boolean", -EINVAL;
        *(bool *)field = b;
        return 0;
    case T_INT:
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return *why = "not an integer", -EINVAL;
        if (n < k->min || n > k->max)
            return *why = "out of range", -ERANGE;
        *(int *)field = (int)n;
        return 0;
    case T_SIZE:
        if (config_parse_size(v, &u) < 0)
            return *why = "not a size", -EINVAL;
        if (u < (uint64_t)k->min || u > (uint64_t)k->max)
            return *why = "out of range", -ERANGE;
        *(uint64_t *)field = u;
        return 0;
    case T_MS:
        if (parse_ms(v, &n) < 0)
            return *why = "not a duration", -EINVAL;
        if (n < k->min || n > k->max)
            return *why = "out of range", -ERANGE;
        *(int *)field = (int)n;
        return 0;
    case T_ENUM:
        for (int i = 0; k->names[i]; i++)
            if (strcmp(v, k->names[i]) == 0) {
                if (k->size == sizeof(int) && k->names != level_names)
                    *(int *)field = i;
                else
                    snprintf(field, k->size, "%s", v);
                return 0;
            }
        return *why = "not one of the accepted values", -EINVAL;
    }
    return -EINVAL;
}

/* ---- [address NAME] sections ---- */

/* Keys of an [address NAME] section; offsets into struct cfg_address. */
#define A(field) offsetof(struct cfg_address, field), sizeof(((struct cfg_address *)0)->field)
static const struct cfg_key address_keys[] = {
    {"address", "max_memory", T_SIZE, A(max_memory), 0, 1024 * GIB, NULL, NULL},
};
#define NADDRESS_KEYS (sizeof(address_keys) / sizeof(address_keys[0]))
#define ADDR_WORDS_MAX 64

struct words {
    const char *w[ADDR_WORDS_MAX];
    size_t len[ADDR_WORDS_MAX];
    int n;
};

/* Splits s at '.'; false if it has more than ADDR_WORDS_MAX words. */
static bool split_words(const char *s, struct words *out)
{
    out->n = 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        if (out->n == ADDR_WORDS_MAX)
            return false;
        out->w[out->n] = s;
        out->len[out->n] = dot ? (size_t)(dot - s) : strlen(s);
        out->n++;
        if (!dot)
            return true;
        s = dot + 1;
    }
}

static bool is_word(const struct words *w, int i, char c)
{
    return w->len[i] == 1 && w->w[i][0] == c;
}

bool config_address_match(const char *pattern, const char *address)
{
    struct words p, a;
    /* m[i][j]: pattern words i.. match address words j.. (filled from the end). */
    bool m[ADDR_WORDS_MAX + 1][ADDR_WORDS_MAX + 1] = {{false}};

    if (strcmp(pattern, address) == 0)
        return true;
    if (!strpbrk(pattern, "*#") || !split_words(pattern, &p) || !split_words(address, &a))
        return false;
    for (int i = p.n; i >= 0; i--)
        for (int j = a.n; j >= 0; j--) {
            if (i == p.n)
                m[i][j] = j == a.n;
            else if (is_word(&p, i, '#'))
                m[i][j] = m[i + 1][j] || (j < a.n && m[i][j + 1]);
            else
                m[i][j] = j < a.n && m[i + 1][j + 1] &&
                          (is_word(&p, i, '*') ||
                           (p.len[i] == a.len[j] && memcmp(p.w[i], a.w[j], a.len[j]) == 0));
        }
    return m[0][0];
}

const struct cfg_address *config_address_find(const struct hamq_config *cfg, const char *address)
{
    for (int i = 0; i < cfg->naddresses; i++)
        if (strcmp(cfg->addresses[i].name, address) == 0)
            return &cfg->addresses[i];
    for (int i = 0; i < cfg->naddresses; i++)
        if (strpbrk(cfg->addresses[i].name, "*#") &&
            config_address_match(cfg->addresses[i].name, address))
            return &cfg->addresses[i];
    return NULL;
}

uint64_t config_address_max_memory(const struct hamq_config *cfg, const char *address)
{
    const struct cfg_address *a = config_address_find(cfg, address);
    return a && a->has_max_memory ? a->max_memory : cfg->address_max_memory;
}

/* A wildcard is a whole word: "a.*.b", "a.#" but not "a*" or "a.b#". */
static bool pattern_ok(const char *name)
{
    struct words w;
    if (!split_words(name, &w))
        return false;
    for (int i = 0; i < w.n; i++)
        if (w.len[i] > 1 && (memchr(w.w[i], '*', w.len[i]) || memchr(w.w[i], '#', w.len[i])))
            return false;
    return true;
}

/*
 * "address NAME" → NAME in out. 0 if section is no address section, 1 if it
 * is one, -EINVAL with *why if it is one whose name cannot be.
 */
static int address_section(const char *section, char *out, size_t cap, const char **why)
{
    static const size_t plen = sizeof("address") - 1;
    const char *n = section + plen;
    size_t len;

    if (strncmp(section, "address", plen) != 0 || (*n && *n != ' ' && *n != '\t'))
        return 0;
    while (*n == ' ' || *n == '\t')
        n++;
    len = strlen(n);
    while (len && (n[len - 1] == ' ' || n[len - 1] == '\t'))
        len--;
    if (!len)
        return *why = "no address name (write [address NAME])", -EINVAL;
    if (len >= cap)
        return *why = "address name too long", -EINVAL;
    if (memchr(n, ' ', len) || memchr(n, '\t', len))
        return *why = "an address name has no spaces", -EINVAL;
    memcpy(out, n, len);
    out[len] = 0;
    if (!pattern_ok(out))
        return *why = "a wildcard (* or #) must be a whole dot-separated word, at most 64 words",
               -EINVAL;
    return 1;
}

static struct cfg_address *address_entry(struct hamq_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->naddresses; i++)
        if (strcmp(cfg->addresses[i].name, name) == 0)
            return &cfg->addresses[i];
    return NULL;
}

static int address_set(struct hamq_config *cfg, const char *name, const char *key,
                       const char *value, const char *origin, char *err, size_t errlen)
{
    struct cfg_address *a = address_entry(cfg, name), tmp;
    const struct cfg_key *k = NULL;
    const char *why;
    char acc[256];

    for (size_t i = 0; i < NADDRESS_KEYS; i++)
        if (strcmp(address_keys[i].name, key) == 0)
            k = &address_keys[i];
    if (!k) {
        snprintf(err, errlen, "%s: unknown key [address %s] %s (accepted: max_memory)", origin,
                 name, key);
        return -EINVAL;
    }
    if (!a && cfg->naddresses == HAMQ_CONFIG_ADDRESSES_MAX) {
        snprintf(err, errlen, "%s: [address %s]: too many address sections (at most %d)", origin,
                 name, HAMQ_CONFIG_ADDRESSES_MAX);
        return -EINVAL;
    }
    /* Validate into a copy: a refused value leaves no half-made section. */
    tmp = a ? *a : (struct cfg_address){0};
    snprintf(tmp.name, sizeof(tmp.name), "%s", name);
    if (set_value(&tmp, k, value, &why) < 0) {
        accepted(k, acc, sizeof(acc));
        snprintf(err, errlen, "%s: [address %s] %s = \"%s\": %s (accepted: %s)", origin, name,
                 key, value, why, acc);
        return -EINVAL;
    }
    tmp.has_max_memory |= strcmp(key, "max_memory") == 0;
    if (!a)
        a = &cfg->addresses[cfg->naddresses++];
    *a = tmp;
    return 0;
}

int config_set(struct hamq_config *cfg, const char *section, const char *key, const char *value,
               const char *origin, char *err, size_t errlen)
{
    char acc[256], name[HAMQ_CONFIG_ADDRESS_NAME_MAX];
    const char *why;
    int idx, r;
    const struct cfg_key *k;

    r = address_section(section, name, sizeof(name), &why);
    if (r < 0) {
        snprintf(err, errlen, "%s: [%s]: %s", origin, section, why);
        return -EINVAL;
    }
    if (r > 0)
        return address_set(cfg, name, key, value, origin, err, errlen);
    k = find_key(section, key, &idx);
    if (!k) {
        snprintf(err, errlen, "%s: unknown key [%s] %s", origin, section, key);
        return -EINVAL;
    }
    r = set_value(cfg, k, value, &why);
    if (r < 0) {
        accepted(k, acc, sizeof(acc));
        snprintf(err, errlen, "%s: [%s] %s = \"%s\": %s (accepted: %s)", origin, section, key,
                 value, why, acc);
        return -EINVAL;
    }
    cfg->set_mask[idx / 64] |= 1ULL << (idx % 64);
    return 0;
}

void config_defaults(struct hamq_config *cfg)
{
    char err[HAMQ_CONFIG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def && config_set(cfg, keys[i].section, keys[i].name, keys[i].def,
                                      "default", err, sizeof(err)) < 0)
            abort(); /* a default the parser refuses is a programming error */
    cfg->set_mask[0] = cfg->set_mask[1] = 0;
}

struct load_ctx {
    struct hamq_config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    char section[HAMQ_CONFIG_ADDRESS_NAME_MAX + 16]; /* of the previous entry */
};

static const char *const sections[] = {"broker", "journal", "ha", "security"};

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *c = user;
    bool known = false;

    char aname[HAMQ_CONFIG_ADDRESS_NAME_MAX];
    const char *why;
    int addr = address_section(section, aname, sizeof(aname), &why);
    bool new_section = strcmp(section, c->section) != 0;

    for (int i = 0; i < 4; i++)
        known |= strcmp(section, sections[i]) == 0;
    if (!known && addr == 0) {
        snprintf(c->err, c->errlen, "unknown section [%s] (accepted: broker, journal, ha, "
                 "security, address NAME)", section);
        return 0;
    }
    snprintf(c->section, sizeof(c->section), "%s", section);
    /* A second [address NAME] for one NAME is a mistake (which one wins?). */
    if (addr > 0 && new_section && address_entry(c->cfg, aname)) {
        snprintf(c->err, c->errlen, "[address %s] appears twice (one section per address)",
                 aname);
        return 0;
    }
    if (!name) /* inih reports an empty section with name == NULL (INI_CALL_HANDLER_ON_NEW_SECTION) */
        return 1;
    return config_set(c->cfg, section, name, value, "", c->err, c->errlen) == 0;
}

int config_load(struct hamq_config *cfg, const char *path, char *err, size_t errlen)
{
    struct load_ctx c = {cfg, path, err, errlen, ""};
    char inner[HAMQ_CONFIG_ERR_MAX];
    FILE *f = fopen(path, "re");
    int line;

    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    c.err = inner;
    c.errlen = sizeof(inner);
    inner[0] = 0;
    line = ini_parse_file(f, on_entry, &c);
    fclose(f);
    if (line == 0)
        return 0;
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot read", path);
        return -EIO;
    }
    if (!inner[0])
        snprintf(inner, sizeof(inner), ": syntax error (expected [section], key = value, or "
                 "a ; or # comment)");
    /* config_set's message starts with its (empty) origin: "": ..." -> strip ": " */
    snprintf(err, errlen, "%s:%d%s%s", path, line, inner[0] == ':' ? "" : ": ", inner);
    return -EINVAL;
}

int config_require(const struct hamq_config *cfg, const char *section, const char *key,
                   char *err, size_t errlen)
{
    int idx;
    const struct cfg_key *k = find_key(section, key, &idx);

    if (!k) {
        snprintf(err, errlen, "unknown key [%s] %s", section, key);
        return -EINVAL;
    }
    if (!k->def && !(cfg->set_mask[idx / 64] & (1ULL << (idx % 64)))) {
        snprintf(err, errlen, "[%s] %s is required and has no default: set it in the config file",
                 section, key);
        return -EINVAL;
    }
    return 0;
}

static void format_value(const struct hamq_config *cfg, const struct cfg_key *k, char *buf,
                         size_t len)
{
    const char *field = (const char *)cfg + k->offset;

    switch (k->type) {
    case T_STR:
    case T_PATH:
        snprintf(buf, len, "%s", field);
        break;
    case T_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    case T_INT:
        snprintf(buf, len, "%d", *(const int *)field);
        break;
    case T_MS:
        snprintf(buf, len, "%dms", *(const int *)field);
        break;
    case T_SIZE:
        snprintf(buf, len, "%" PRIu64, *(const uint64_t *)field);
        break;
    case T_ENUM:
        if (k->names == level_names)
            snprintf(buf, len, "%s", field);
        else
            snprintf(buf, len, "%s", k->names[*(const int *)field]);
        break;
    }
}

int config_dump(const struct hamq_config *cfg, int fd)
{
    const char *last = "";
    char val[HAMQ_CONFIG_STR_MAX * 2];

    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(last, keys[i].section) != 0) {
            if (dprintf(fd, "%s[%s]\n", i ? "\n" : "", keys[i].section) < 0)
                return -errno;
            last = keys[i].section;
        }
        format_value(cfg, &keys[i], val, sizeof(val));
        if (dprintf(fd, "%s%s = %s\n", (!keys[i].def && !val[0]) ? "; " : "", keys[i].name,
                    val) < 0)
            return -errno;
    }
    for (int i = 0; i < cfg->naddresses; i++) {
        const struct cfg_address *a = &cfg->addresses[i];
        if (dprintf(fd, "\n[address %s]\n", a->name) < 0 ||
            (a->has_max_memory && dprintf(fd, "max_memory = %" PRIu64 "\n", a->max_memory) < 0))
            return -errno;
    }
    return 0;
}
