/*
 * config — the one hamq configuration file (/etc/hamq/hamq.conf, INI format,
 * sections [broker] [journal] [ha] [security], and one [address NAME]
 * section per address with its own limits) read with libinih into one
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

/*
 * One [address NAME] section: settings of the addresses NAME matches
 * (Artemis' <address-setting match="NAME">). NAME is an address name, or a
 * pattern of dot-separated words where "*" stands for exactly one word and
 * "#" for any number of words (zero included): "orders.*", "eu.#", "#".
 * Which section applies to an address: the one whose NAME is the address
 * itself; otherwise the first pattern in file order that matches; otherwise
 * none, and [broker] address_max_memory applies.
 */
#define HAMQ_CONFIG_ADDRESSES_MAX 64
#define HAMQ_CONFIG_ADDRESS_NAME_MAX 128
struct cfg_address {
    char name[HAMQ_CONFIG_ADDRESS_NAME_MAX];
    bool has_max_memory;     /* max_memory was given (else [broker] address_max_memory) */
    uint64_t max_memory;     /* bytes held in the address's queues; 0 = no limit */
};

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
    uint64_t address_max_memory; /* per address, unless [address NAME] says; 0 = none */
    int id_cache_size;       /* duplicate ids remembered per address; 0 = off */
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
    uint64_t large_message_size;     /* bodies this big go to large-messages/; 0 = a
                                        quarter of a segment */

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

    /* [address NAME] sections, in file order. */
    struct cfg_address addresses[HAMQ_CONFIG_ADDRESSES_MAX];
    int naddresses;

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

/* Sets one key as if it stood in the file; origin (e.g. "--store") names it in errors.
 * section may be "address NAME" (creates that address section if needed). */
int config_set(struct hamq_config *cfg, const char *section, const char *key, const char *value,
               const char *origin, char *err, size_t errlen);

/* -EINVAL with a message if section.key was neither set nor has a default. */
int config_require(const struct hamq_config *cfg, const char *section, const char *key,
                   char *err, size_t errlen);

/* Writes every key with its current value, as a valid config file. */
int config_dump(const struct hamq_config *cfg, int fd);

/* The [address NAME] section that applies to address (see struct cfg_address), or NULL. */
const struct cfg_address *config_address_find(const struct hamq_config *cfg, const char *address);

/* The memory limit of address: its section's max_memory, else [broker]
 * address_max_memory. 0 = no limit. */
uint64_t config_address_max_memory(const struct hamq_config *cfg, const char *address);

/* True if pattern (words separated by '.', "*" one word, "#" any words) matches address. */
bool config_address_match(const char *pattern, const char *address);

/* Parses "10M", "4096", "1G" (binary units). -EINVAL or -ERANGE. */
int config_parse_size(const char *s, uint64_t *out);

#endif
