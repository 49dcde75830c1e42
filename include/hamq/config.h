/*
 * config — the one hamq configuration file (/etc/hamq/hamq.conf, INI format,
 * sections [broker] [journal] [ha] [security]) read with libinih into one
 * typed struct. Every key has a default except the few that only make sense
 * per node ([ha] node_id); those are checked with config_require().
 *
 * Errors name the file, the line, the key and what is accepted, e.g.
 *   /etc/hamq/hamq.conf:12: [journal] segment_size = "10XB": not a size
 *   (accepted: a number with an optional K, M or G suffix, 1M..1G)
 *
 * Command-line flags that override the file go through config_set(), so a
 * flag is validated exactly like the same key in the file.
 */
#ifndef HAMQ_CONFIG_H
#define HAMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAMQ_CONFIG_DEFAULT_PATH "/etc/hamq/hamq.conf"
#define HAMQ_CONFIG_STR_MAX 256
#define HAMQ_CONFIG_ERR_MAX 512

enum cfg_sync_mode { CFG_SYNC_FDATASYNC = 0, CFG_SYNC_DSYNC };
enum cfg_ha_role { CFG_ROLE_PRIMARY = 0, CFG_ROLE_BACKUP };
enum cfg_activation { CFG_ACTIVATION_EXEC = 0, CFG_ACTIVATION_SYSTEMD };

struct hamq_config {
    /* [broker] */
    char instance[64];       /* shm segment name: /dev/shm/hamq.<instance> */
    char store[HAMQ_CONFIG_STR_MAX];
    int workers;
    int port_offset;
    int port_all;            /* 61616, every protocol sniffed; 0 = off */
    int port_stomp;          /* 61613; 0 = off */
    int port_amqp;           /* 5672; 0 = off */
    char bind[64];
    bool auto_create;
    uint64_t max_message_size;
    uint64_t ring_size;      /* bytes per ring, power of two */
    uint64_t max_memory;     /* message bytes held before producers are blocked */
    int default_prefetch;
    int max_delivery_attempts;
    char dead_letter_address[128];
    char log_level[16];

    /* [journal] */
    uint64_t segment_size;
    uint64_t write_buffer_size;
    enum cfg_sync_mode sync_mode;
    uint64_t checkpoint_bytes;       /* journal bytes between two checkpoints */
    int compact_min_live_percent;    /* compact segments whose live share is below */
    bool allow_truncate_corrupt;     /* start anyway, cutting the store at corruption */

    /* [ha] */
    char node_id[64];
    enum cfg_ha_role role;
    int priority;
    char ha_listen[HAMQ_CONFIG_STR_MAX];
    char peers[HAMQ_CONFIG_STR_MAX * 2]; /* comma-separated ZeroMQ endpoints */
    int heartbeat_interval_ms;
    int heartbeat_timeout_ms;
    bool allow_failback;
    enum cfg_activation activation;
    char vip[64];                        /* "10.0.0.50/24" or empty */
    char vip_interface[32];
    char curve_secret_key_file[HAMQ_CONFIG_STR_MAX];
    char curve_peer_public_key_file[HAMQ_CONFIG_STR_MAX];

    /* [security] */
    bool allow_anonymous;
    char users_file[HAMQ_CONFIG_STR_MAX];

    /* Which keys were set from a file or a flag (bit per table entry). */
    uint64_t set_mask[2];
};

/* Fills every field with its default. */
void config_defaults(struct hamq_config *cfg);

/*
 * Reads path into cfg (which should hold defaults first). Returns 0, -ENOENT
 * if the file does not exist, -EINVAL (err says file:line: what) on a bad
 * key or value, or another -errno if the file cannot be read.
 */
int config_load(struct hamq_config *cfg, const char *path, char *err, size_t errlen);

/* Sets one key as if it stood in the file; origin (e.g. "--store") names it in errors. */
int config_set(struct hamq_config *cfg, const char *section, const char *key, const char *value,
               const char *origin, char *err, size_t errlen);

/* -EINVAL with a message if section.key was neither set nor has a default. */
int config_require(const struct hamq_config *cfg, const char *section, const char *key,
                   char *err, size_t errlen);

/* Writes every key with its current value, as a valid config file. */
int config_dump(const struct hamq_config *cfg, int fd);

/* Parses "10M", "4096", "1G" (binary units). -EINVAL or -ERANGE. */
int config_parse_size(const char *s, uint64_t *out);

#endif
