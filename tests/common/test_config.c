/* Unit tests of common/config.c: defaults, parsing, and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamq/config.h"

static char path[64];

static int write_conf(const char *text)
{
    strcpy(path, "/tmp/hamq-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return 0;
}

static int load(struct hamq_config *cfg, const char *text, char *err)
{
    write_conf(text);
    config_defaults(cfg);
    int r = config_load(cfg, path, err, HAMQ_CONFIG_ERR_MAX);
    unlink(path);
    return r;
}

static void defaults_give_the_documented_values(void **state)
{
    struct hamq_config c;
    (void)state;
    config_defaults(&c);
    assert_string_equal(c.instance, "hamq");
    assert_int_equal(c.port_all, 61616);
    assert_int_equal(c.port_stomp, 61613);
    assert_int_equal(c.port_amqp, 5672);
    assert_int_equal(c.workers, 2);
    assert_true(c.auto_create);
    assert_int_equal(c.max_message_size, 100ULL << 20);
    assert_int_equal(c.segment_size, 10ULL << 20);
    assert_int_equal(c.heartbeat_timeout_ms, 1000);
    assert_int_equal(c.role, CFG_ROLE_PRIMARY);
}

static void config_reads_every_type_of_value(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    int r = load(&c, "[broker]\nstore = /srv/store\nworkers = 4\nauto_create = no\n"
                     "max_message_size = 2M\n\n; comment\n[journal]\nsync = dsync\n"
                     "[ha]\nnode_id = n1\nrole = backup\nheartbeat_timeout = 2s\n"
                     "heartbeat_interval = 250ms\n", err);
    assert_int_equal(r, 0);
    assert_string_equal(c.store, "/srv/store");
    assert_int_equal(c.workers, 4);
    assert_false(c.auto_create);
    assert_int_equal(c.max_message_size, 2ULL << 20);
    assert_int_equal(c.sync_mode, CFG_SYNC_DSYNC);
    assert_string_equal(c.node_id, "n1");
    assert_int_equal(c.role, CFG_ROLE_BACKUP);
    assert_int_equal(c.heartbeat_timeout_ms, 2000);
    assert_int_equal(c.heartbeat_interval_ms, 250);
}

static void config_rejects_unknown_key_naming_file_line_and_key(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    char want[128];
    (void)state;
    assert_int_equal(load(&c, "[broker]\nworkers = 2\nwrokers = 3\n", err), -EINVAL);
    snprintf(want, sizeof(want), "%s:3: unknown key [broker] wrokers", path);
    assert_string_equal(err, want);
}

static void config_rejects_bad_value_listing_accepted_values(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[journal]\nsync = sometimes\n", err), -EINVAL);
    assert_non_null(strstr(err, ":2: [journal] sync = \"sometimes\""));
    assert_non_null(strstr(err, "accepted: fdatasync, dsync"));
}

static void config_rejects_out_of_range_integer(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[broker]\nworkers = 0\n", err), -EINVAL);
    assert_non_null(strstr(err, "out of range (accepted: an integer 1..64)"));
}

static void config_rejects_size_with_unknown_suffix(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[journal]\nsegment_size = 10XB\n", err), -EINVAL);
    assert_non_null(strstr(err, "not a size"));
}

static void config_rejects_relative_store_path(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[broker]\nstore = data\n", err), -EINVAL);
    assert_non_null(strstr(err, "not an absolute path"));
}

static void config_rejects_unknown_section(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[brokr]\nworkers = 2\n", err), -EINVAL);
    assert_non_null(strstr(err, ":2: unknown section [brokr]"));
}

static void config_rejects_line_without_equals(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[broker]\nworkers\n", err), -EINVAL);
    assert_non_null(strstr(err, ":2: syntax error"));
}

static void config_reports_missing_file_as_enoent(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load(&c, "/nonexistent/hamq.conf", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/hamq.conf"));
}

static void config_require_fails_for_unset_key_without_default(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    config_defaults(&c);
    assert_int_equal(config_require(&c, "ha", "node_id", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "[ha] node_id is required"));
    assert_int_equal(config_set(&c, "ha", "node_id", "a", "--node-id", err, sizeof(err)), 0);
    assert_int_equal(config_require(&c, "ha", "node_id", err, sizeof(err)), 0);
}

static void config_set_names_the_flag_in_its_error(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    config_defaults(&c);
    assert_int_equal(config_set(&c, "broker", "port_offset", "-1", "--port-offset", err,
                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--port-offset: [broker] port_offset = \"-1\""));
}

static void new_broker_and_journal_keys_have_their_documented_defaults(void **state)
{
    struct hamq_config c;
    (void)state;
    config_defaults(&c);
    assert_int_equal(c.address_max_memory, 0);
    assert_int_equal(c.id_cache_size, 20000);
    assert_int_equal(c.large_message_size, 0);
    assert_int_equal(c.naddresses, 0);
    assert_int_equal(config_address_max_memory(&c, "orders"), 0);
}

static void address_sections_give_each_address_its_own_memory_limit(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    int r = load(&c, "[broker]\naddress_max_memory = 10M\nid_cache_size = 0\n"
                     "[journal]\nlarge_message_size = 512K\n"
                     "[address orders]\nmax_memory = 64K\n"
                     "[address  audit ]\nmax_memory = 0\n", err);
    assert_int_equal(r, 0);
    assert_int_equal(c.id_cache_size, 0);
    assert_int_equal(c.large_message_size, 512 << 10);
    assert_int_equal(c.naddresses, 2);
    assert_string_equal(c.addresses[1].name, "audit");
    assert_int_equal(config_address_max_memory(&c, "orders"), 64 << 10);
    assert_int_equal(config_address_max_memory(&c, "audit"), 0); /* 0: no limit here */
    assert_int_equal(config_address_max_memory(&c, "other"), 10 << 20);
}

static void address_wildcards_match_whole_words_and_an_exact_name_wins(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    int r = load(&c, "[address eu.#]\nmax_memory = 1M\n[address eu.*.orders]\nmax_memory = 2M\n"
                     "[address eu.fr.orders]\nmax_memory = 3M\n", err);
    assert_int_equal(r, 0);
    assert_int_equal(config_address_max_memory(&c, "eu.fr.orders"), 3 << 20); /* exact */
    assert_int_equal(config_address_max_memory(&c, "eu.de.orders"), 1 << 20); /* first pattern */
    assert_int_equal(config_address_max_memory(&c, "eu"), 1 << 20);  /* # = zero words too */
    assert_int_equal(config_address_max_memory(&c, "euro"), 0);
    assert_true(config_address_match("eu.*.orders", "eu.de.orders"));
    assert_false(config_address_match("eu.*.orders", "eu.de.x.orders"));
    assert_true(config_address_match("#.orders", "a.b.c.orders"));
    assert_true(config_address_match("#", "anything.at.all"));
    assert_false(config_address_match("a.*", "a"));
    assert_false(config_address_match("orders", "orders2"));
}

static void address_section_with_a_bad_value_names_file_line_section_and_key(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    char want[256];
    (void)state;
    assert_int_equal(load(&c, "[broker]\nworkers = 2\n[address orders]\nmax_memory = lots\n",
                          err), -EINVAL);
    snprintf(want, sizeof(want), "%s:4: [address orders] max_memory = \"lots\": not a size", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "accepted: a size in bytes"));
    assert_int_equal(c.naddresses, 0); /* no half-made section */
}

static void address_section_refuses_unknown_keys_bad_names_and_repeats(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[address orders]\nmax_size = 1M\n", err), -EINVAL);
    assert_non_null(strstr(err, ":2: unknown key [address orders] max_size (accepted: max_memory)"));
    assert_int_equal(load(&c, "[address]\nmax_memory = 1M\n", err), -EINVAL);
    assert_non_null(strstr(err, ":2: [address]: no address name"));
    assert_int_equal(load(&c, "[address ord*]\nmax_memory = 1M\n", err), -EINVAL);
    assert_non_null(strstr(err, "must be a whole dot-separated word"));
    assert_int_equal(load(&c, "[address a b]\nmax_memory = 1M\n", err), -EINVAL);
    assert_non_null(strstr(err, "no spaces"));
    assert_int_equal(load(&c, "[address q]\nmax_memory = 1M\n[broker]\nworkers = 2\n"
                              "[address q]\nmax_memory = 2M\n", err), -EINVAL);
    assert_non_null(strstr(err, ":6: [address q] appears twice"));
    assert_int_equal(load(&c, "[addresses]\nmax_memory = 1M\n", err), -EINVAL);
    assert_non_null(strstr(err, "unknown section [addresses]"));
}

static void new_keys_refuse_out_of_range_values(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    (void)state;
    assert_int_equal(load(&c, "[broker]\nid_cache_size = -1\n", err), -EINVAL);
    assert_non_null(strstr(err, "[broker] id_cache_size = \"-1\": out of range"));
    assert_int_equal(load(&c, "[broker]\naddress_max_memory = -1\n", err), -EINVAL);
    assert_non_null(strstr(err, "not a size"));
    assert_int_equal(load(&c, "[journal]\nlarge_message_size = 2G\n", err), -EINVAL);
    assert_non_null(strstr(err, "out of range"));
}

static void too_many_address_sections_are_refused(void **state)
{
    struct hamq_config c;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    char name[32];
    (void)state;
    config_defaults(&c);
    for (int i = 0; i < HAMQ_CONFIG_ADDRESSES_MAX; i++) {
        snprintf(name, sizeof(name), "address a%d", i);
        assert_int_equal(config_set(&c, name, "max_memory", "1K", "t", err, sizeof(err)), 0);
    }
    assert_int_equal(config_set(&c, "address one.more", "max_memory", "1K", "t", err,
                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "too many address sections"));
}

static void config_dump_output_loads_back_to_the_same_values(void **state)
{
    struct hamq_config a, b;
    char err[HAMQ_CONFIG_ERR_MAX] = "";
    char p[] = "/tmp/hamq-test-dump-XXXXXX";
    (void)state;
    config_defaults(&a);
    assert_int_equal(config_set(&a, "broker", "workers", "7", "t", err, sizeof(err)), 0);
    assert_int_equal(config_set(&a, "ha", "role", "backup", "t", err, sizeof(err)), 0);
    assert_int_equal(config_set(&a, "address orders.#", "max_memory", "3M", "t", err,
                                sizeof(err)), 0);
    int fd = mkstemp(p);
    assert_int_equal(config_dump(&a, fd), 0);
    close(fd);
    config_defaults(&b);
    assert_int_equal(config_load(&b, p, err, sizeof(err)), 0);
    unlink(p);
    assert_int_equal(b.workers, 7);
    assert_int_equal(b.role, CFG_ROLE_BACKUP);
    assert_int_equal(b.segment_size, a.segment_size);
    assert_int_equal(b.heartbeat_timeout_ms, a.heartbeat_timeout_ms);
    assert_string_equal(b.log_level, a.log_level);
    assert_int_equal(b.naddresses, 1);
    assert_int_equal(config_address_max_memory(&b, "orders.eu"), 3 << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_give_the_documented_values),
        cmocka_unit_test(config_reads_every_type_of_value),
        cmocka_unit_test(config_rejects_unknown_key_naming_file_line_and_key),
        cmocka_unit_test(config_rejects_bad_value_listing_accepted_values),
        cmocka_unit_test(config_rejects_out_of_range_integer),
        cmocka_unit_test(config_rejects_size_with_unknown_suffix),
        cmocka_unit_test(config_rejects_relative_store_path),
        cmocka_unit_test(config_rejects_unknown_section),
        cmocka_unit_test(config_rejects_line_without_equals),
        cmocka_unit_test(config_reports_missing_file_as_enoent),
        cmocka_unit_test(config_require_fails_for_unset_key_without_default),
        cmocka_unit_test(config_set_names_the_flag_in_its_error),
        cmocka_unit_test(new_broker_and_journal_keys_have_their_documented_defaults),
        cmocka_unit_test(address_sections_give_each_address_its_own_memory_limit),
        cmocka_unit_test(address_wildcards_match_whole_words_and_an_exact_name_wins),
        cmocka_unit_test(address_section_with_a_bad_value_names_file_line_section_and_key),
        cmocka_unit_test(address_section_refuses_unknown_keys_bad_names_and_repeats),
        cmocka_unit_test(new_keys_refuse_out_of_range_values),
        cmocka_unit_test(too_many_address_sections_are_refused),
        cmocka_unit_test(config_dump_output_loads_back_to_the_same_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
