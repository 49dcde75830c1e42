/*
 * journal_format — the on-disk layout of the hamq store, defined once.
 *
 * A store is a directory:
 *
 *   <store>/journal/<seq>.seg   message journal segments, seq = 16 lower-case hex digits
 *   <store>/journal/checkpoint  which checkpoint recovery starts from (struct jnl_ckpt_ptr)
 *   <store>/bindings/<seq>.seg  the bindings journal (addresses and queues), same format
 *   <store>/large-messages/<id>.msg  body of a large message (JNL_REC_LARGE_ADD), id = the
 *                               msg_id in 16 lower-case hex digits; the raw body bytes
 *   <store>/live.lock           OFD lock held by the live node's supervisor (HA work)
 *   <store>/writer.lock         OFD lock held by the one writer process (hamq-journal)
 *   <store>/store.epoch         the fencing epoch: ASCII decimal, then '\n'
 *
 * Segment = one preallocated file (fallocate, [journal] segment_size, a multiple of
 * JNL_BLOCK). Block 0 holds struct jnl_seg_header; records start at JNL_DATA_OFFSET
 * and follow each other without gaps, each starting on an 8-byte boundary. The
 * space after the last record is zero (preallocated, never written): an all-zero
 * record header is the logical end of a segment, not corruption. Segment files are
 * created as "<seq>.tmp", given their header, synced, then renamed: a file named
 * ".seg" always had a complete header once, so a short or headerless ".seg" file is
 * damage. Segments are never reused: compaction deletes them, a new one is a fresh
 * fallocate (its unwritten extents read as zero), so stale records cannot reappear.
 *
 * Compatibility (for every struct below): explicit fixed-width fields, little-endian
 * (the only byte order hamq runs on; checked by _Static_assert on the host), never
 * reorder or resize a field; new fields only in reserved space, and any change a
 * reader of the previous version would misread bumps JNL_FORMAT_VERSION. A reader
 * refuses a version it does not know (corruption-class error, never a guess).
 */
#ifndef HAMQ_JOURNAL_FORMAT_H
#define HAMQ_JOURNAL_FORMAT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "journal format is little-endian");

#define JNL_SEG_MAGIC 0x534a5148u /* "HQJS" read as bytes */
#define JNL_FORMAT_VERSION 1u
#define JNL_BLOCK 4096u            /* O_DIRECT unit: every write is block aligned */
#define JNL_DATA_OFFSET JNL_BLOCK  /* first record of a segment */
#define JNL_REC_ALIGN 8u
#define JNL_SEG_SUFFIX ".seg"
#define JNL_SEG_NAME_LEN 20 /* 16 hex digits + ".seg" */

/* Which journal a segment belongs to (a bindings segment in journal/ is damage). */
enum jnl_seg_kind {
    JNL_KIND_MESSAGES = 1,
    JNL_KIND_BINDINGS = 2,
};

/*
 * Segment header, at offset 0 of every segment, padded with zeros to JNL_BLOCK.
 *
 * Written once, by the writer, before the file gets its ".seg" name; frozen after.
 * Readers (recovery, a follower in another process) read it without any lock since
 * it never changes. Fields:
 *   magic, version   checked first; an unknown version refuses the store.
 *   header_size      sizeof(struct jnl_seg_header) when written (room to grow).
 *   kind             enum jnl_seg_kind.
 *   block_size       JNL_BLOCK when written; a reader checks it equals its own.
 *   seq              segment sequence number, equal to the number in the file name;
 *                    consecutive segments of a journal have consecutive seq (a
 *                    missing number is a gap unless compaction deleted the segment
 *                    before the checkpoint, see the checkpoint pointer).
 *   epoch            the store.epoch value of the writer that created the segment.
 *   created_ns       CLOCK_REALTIME at creation, for operators only.
 *   segment_size     the file size the writer preallocated (the logical size even if
 *                    the file was later truncated by damage).
 *   header_crc       CRC32C of the bytes before this field.
 */
struct jnl_seg_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint32_t kind;
    uint32_t block_size;
    uint64_t seq;
    uint64_t epoch;
    uint64_t created_ns;
    uint64_t segment_size;
    uint8_t reserved[76];
    uint32_t header_crc;
};
_Static_assert(sizeof(struct jnl_seg_header) == 128, "segment header layout");
_Static_assert(offsetof(struct jnl_seg_header, seq) == 16, "segment header layout");
_Static_assert(offsetof(struct jnl_seg_header, header_crc) == 124, "segment header layout");

/*
 * Record types. The payload of each is one of the structs below (little-endian):
 *
 * JNL_REC_MSG_ADD        struct jnl_msg_add + body bytes. The body is opaque: the
 *                        broker encodes properties and body; the store never parses it.
 *                        A message lives while it has queue references.
 * JNL_REC_REF_ADD        struct jnl_ref: message msg_id is on queue queue_id
 *                        (delivery count 0).
 * JNL_REC_ACK            struct jnl_ref: delete the reference (acknowledged or
 *                        removed). The last reference gone = the message is dead.
 * JNL_REC_DCOUNT         struct jnl_dcount: set the delivery count of a reference.
 * JNL_REC_TX_PREPARE     struct jnl_tx: the transaction's records are complete and
 *                        must survive a restart undecided (XA prepare).
 * JNL_REC_TX_COMMIT      struct jnl_tx: apply every record flagged JNL_F_TX with this
 *                        tx_id, in LSN order, as if they were written now.
 * JNL_REC_TX_ROLLBACK    struct jnl_tx: forget them. A transaction neither committed,
 *                        rolled back nor prepared when the store restarts is rolled back.
 * JNL_REC_EPOCH_START    struct jnl_epoch: a writer opened the store with this epoch.
 *                        Written by every store_open; its synced_lsn also seals the
 *                        history before it (see synced_lsn below).
 * JNL_REC_CKPT_BEGIN     struct jnl_ckpt_begin: a checkpoint of the index as of
 *                        covered_lsn starts. Every record with LSN <= covered_lsn is
 *                        reflected in it; records after it are replayed on top.
 * JNL_REC_CKPT_DATA      a packed run of struct jnl_ckpt_msg (each followed by its
 *                        nrefs struct jnl_ckpt_ref) and struct jnl_ckpt_txop entries
 *                        (distinguished by the leading tag).
 * JNL_REC_CKPT_END       struct jnl_ckpt_end: the checkpoint is complete.
 * JNL_REC_MSG_MOVE       struct jnl_msg_add + body: compaction copied a live message
 *                        out of an old segment; the index points at this copy from
 *                        now on. References and counts are untouched.
 * JNL_REC_BINDING_ADD    (bindings journal) struct jnl_binding + address + name + filter.
 * JNL_REC_BINDING_DEL    (bindings journal) struct jnl_binding (only queue_id counts).
 * JNL_REC_DUP_ID         struct jnl_dup_id + address bytes + id bytes: a duplicate-detection
 *                        id (Artemis _AMQ_DUPL_ID) was accepted on that address. The
 *                        store keeps the newest N per address (struct store_opts,
 *                        default JNL_DUP_IDS_DEFAULT); older ones are dead. Independent of
 *                        any message: it stays after the message is acknowledged. Never
 *                        part of a transaction (JNL_F_TX on it is corruption).
 *                        Checkpoints carry the live ids (JNL_CKPT_TAG_DUP), so a segment
 *                        is never kept for its DUP_ID records.
 *
 * JNL_REC_LARGE_ADD      struct jnl_large_add: like MSG_ADD, but the body is the file
 *                        large-messages/<msg_id>.msg (a body too big for a segment, or
 *                        over the store's large_message_size). The file is written,
 *                        fdatasync'd and its directory fsync'd BEFORE this record goes
 *                        to disk, so a durable record never names a missing file; a file
 *                        that no live record names is an orphan (a crash between the two
 *                        steps) and is deleted at recovery. The file is deleted once the
 *                        record that removed the message's last reference is durable.
 *                        Compaction never moves it (nothing to move: the record is tiny
 *                        and checkpoints carry it as JNL_CKPT_TAG_LARGE).
 *
 * Compatibility of the types added after the first release (DUP_ID, LARGE_ADD): JNL_FORMAT_VERSION
 * stays 1 because a version-1 store (without them) reads exactly as before; a binary
 * that predates a type refuses a store holding it ("unknown record type", corruption
 * class: do NOT set allow_truncate_corrupt to get an older binary to start, it would cut
 * the journal there). Downgrading after the new types were written is not supported.
 */
enum jnl_rec_type {
    JNL_REC_MSG_ADD = 1,
    JNL_REC_REF_ADD = 2,
    JNL_REC_ACK = 3,
    JNL_REC_DCOUNT = 4,
    JNL_REC_TX_PREPARE = 5,
    JNL_REC_TX_COMMIT = 6,
    JNL_REC_TX_ROLLBACK = 7,
    JNL_REC_EPOCH_START = 8,
    JNL_REC_CKPT_BEGIN = 9,
    JNL_REC_CKPT_DATA = 10,
    JNL_REC_CKPT_END = 11,
    JNL_REC_MSG_MOVE = 12,
    JNL_REC_BINDING_ADD = 13,
    JNL_REC_BINDING_DEL = 14,
    JNL_REC_DUP_ID = 15,
    JNL_REC_LARGE_ADD = 16,
    JNL_REC_TYPE_MAX = 16,
};

/* Record flags. */
#define JNL_F_TX 0x0001u /* part of transaction tx_id: counts only once committed */
#define JNL_F_KNOWN (JNL_F_TX)

/*
 * Record header; the payload follows, then zero padding to JNL_REC_ALIGN.
 *
 * Written by the one writer into its buffer, then to disk in one write with the
 * rest of its batch; never modified after. Fields:
 *   crc         CRC32C of this header (crc field taken as 0) followed by the
 *               length payload bytes (not the padding).
 *   length      payload bytes, at most the segment's data area.
 *   type        enum jnl_rec_type; an unknown type with a valid CRC is corruption.
 *   flags       JNL_F_*; unknown flags are corruption.
 *   lsn         log sequence number: starts at 1, +1 per record, across segments.
 *   synced_lsn  every record with LSN <= synced_lsn was durable on disk when this
 *               record was submitted. Recovery uses it to tell a torn write from
 *               corruption: a bad record at LSN n followed (anywhere later) by a
 *               valid record whose synced_lsn >= n means record n had been made
 *               durable and later damaged (corruption); otherwise the bad record
 *               and everything after it belong to the last, unacknowledged write
 *               (a torn tail, cut off). A follower applies only records up to the
 *               highest synced_lsn it has seen. (Damage inside the very last batch
 *               before a crash cannot be told from a torn write; the EPOCH_START
 *               record of the next open seals it.)
 *   tx_id       transaction of a JNL_F_TX record, else 0.
 */
struct jnl_rec_header {
    uint32_t crc;
    uint32_t length;
    uint16_t type;
    uint16_t flags;
    uint32_t reserved;
    uint64_t lsn;
    uint64_t synced_lsn;
    uint64_t tx_id;
};
_Static_assert(sizeof(struct jnl_rec_header) == 40, "record header layout");
_Static_assert(offsetof(struct jnl_rec_header, lsn) == 16, "record header layout");
_Static_assert(sizeof(struct jnl_rec_header) % JNL_REC_ALIGN == 0, "record header alignment");

/* JNL_REC_MSG_ADD / JNL_REC_MSG_MOVE payload head; the body bytes follow. */
struct jnl_msg_add {
    uint64_t msg_id;
};
_Static_assert(sizeof(struct jnl_msg_add) == 8, "msg add layout");

/* JNL_REC_REF_ADD / JNL_REC_ACK payload. */
struct jnl_ref {
    uint64_t msg_id;
    uint64_t queue_id;
};
_Static_assert(sizeof(struct jnl_ref) == 16, "ref layout");

/* JNL_REC_DCOUNT payload. */
struct jnl_dcount {
    uint64_t msg_id;
    uint64_t queue_id;
    uint32_t count;
    uint32_t reserved;
};
_Static_assert(sizeof(struct jnl_dcount) == 24, "dcount layout");

/*
 * JNL_REC_DUP_ID payload head; address_len address bytes then id_len id bytes follow
 * (no terminators). 1 <= address_len <= JNL_DUP_ADDRESS_MAX, 1 <= id_len <=
 * JNL_DUP_ID_MAX; record length == 8 + address_len + id_len exactly.
 */
#define JNL_DUP_ADDRESS_MAX 4096u
#define JNL_DUP_ID_MAX 1024u
#define JNL_DUP_IDS_DEFAULT 20000u /* per address, as Artemis' id-cache-size */
struct jnl_dup_id {
    uint16_t address_len;
    uint16_t id_len;
    uint32_t reserved;
};
_Static_assert(sizeof(struct jnl_dup_id) == 8, "dup id layout");

/* JNL_REC_LARGE_ADD payload: body_crc = CRC32C of the body_len bytes of the file. */
#define JNL_LARGE_DIR "large-messages"
#define JNL_LARGE_SUFFIX ".msg"
struct jnl_large_add {
    uint64_t msg_id;
    uint64_t body_len; /* < 4 GiB (the index keeps 32 bits) */
    uint32_t body_crc;
    uint32_t reserved;
};
_Static_assert(sizeof(struct jnl_large_add) == 24, "large add layout");

/* JNL_REC_TX_PREPARE / COMMIT / ROLLBACK payload. */
struct jnl_tx {
    uint64_t tx_id;
};
_Static_assert(sizeof(struct jnl_tx) == 8, "tx layout");

/* JNL_REC_EPOCH_START payload. */
struct jnl_epoch {
    uint64_t epoch;
    uint64_t started_ns;
};
_Static_assert(sizeof(struct jnl_epoch) == 16, "epoch layout");

/*
 * Checkpoints. BEGIN, any number of DATA records, END, written by the writer in
 * one go as consecutive LSNs (a reader refuses any other record between them;
 * they may span segments). Recovery loads the snapshot and replays from the record
 * after END. Only a checkpoint whose END is durable and that the checkpoint
 * pointer names is used.
 *   covered_lsn      the state captured is the one after applying LSN covered_lsn.
 *   first_live_seq   lowest segment seq holding a body the checkpoint points into;
 *                    segments before it that are missing were deleted on purpose.
 */
struct jnl_ckpt_begin {
    uint64_t covered_lsn;
    uint64_t nmsgs;
    uint64_t ntxops;
    uint64_t first_live_seq;
};
_Static_assert(sizeof(struct jnl_ckpt_begin) == 32, "ckpt begin layout");

#define JNL_CKPT_TAG_MSG 1u
#define JNL_CKPT_TAG_TXOP 2u
#define JNL_CKPT_TAG_DUP 3u /* struct jnl_ckpt_dup: one live duplicate id */
#define JNL_CKPT_TAG_LARGE 4u /* struct jnl_ckpt_large + its refs: one live large message */

/* One live message in a CKPT_DATA record: where its body record is, and its refs. */
struct jnl_ckpt_msg {
    uint32_t tag; /* JNL_CKPT_TAG_MSG */
    uint32_t nrefs;
    uint64_t msg_id;
    uint64_t seg_seq;    /* segment holding the MSG_ADD / MSG_MOVE record */
    uint32_t rec_offset; /* offset of that record's header in the segment */
    uint32_t rec_length; /* its payload length */
};
_Static_assert(sizeof(struct jnl_ckpt_msg) == 32, "ckpt msg layout");

/* One live large message (counted in nmsgs like jnl_ckpt_msg), then nrefs refs. */
struct jnl_ckpt_large {
    uint32_t tag; /* JNL_CKPT_TAG_LARGE */
    uint32_t nrefs;
    uint64_t msg_id;
    uint64_t body_len;
    uint32_t body_crc;
    uint32_t reserved;
};
_Static_assert(sizeof(struct jnl_ckpt_large) == 32, "ckpt large layout");

struct jnl_ckpt_ref {
    uint64_t queue_id;
    uint32_t count;
    uint32_t reserved;
};
_Static_assert(sizeof(struct jnl_ckpt_ref) == 16, "ckpt ref layout");

/* A record of a transaction still open (or prepared) at covered_lsn. */
struct jnl_ckpt_txop {
    uint32_t tag; /* JNL_CKPT_TAG_TXOP */
    uint16_t type;      /* the original record type */
    uint8_t prepared;   /* the transaction was prepared */
    uint8_t reserved;
    uint64_t tx_id;
    uint64_t msg_id;
    uint64_t queue_id;
    uint64_t seg_seq; /* MSG_ADD: where the body is; else 0 */
    uint32_t rec_offset;
    uint32_t rec_length;
    uint32_t count;
    uint32_t reserved2;
};
_Static_assert(sizeof(struct jnl_ckpt_txop) == 56, "ckpt txop layout");

/*
 * A live duplicate id in a CKPT_DATA record: address_len + id_len bytes follow, then
 * zeros to the next multiple of 8. An address's ids come oldest first (recovery keeps
 * the newest N). Not counted in BEGIN/END (the records are consecutive and CRC-checked).
 */
struct jnl_ckpt_dup {
    uint32_t tag; /* JNL_CKPT_TAG_DUP */
    uint16_t address_len;
    uint16_t id_len;
};
_Static_assert(sizeof(struct jnl_ckpt_dup) == 8, "ckpt dup layout");

struct jnl_ckpt_end {
    uint64_t begin_lsn;
    uint64_t nmsgs;
    uint64_t ntxops;
};
_Static_assert(sizeof(struct jnl_ckpt_end) == 24, "ckpt end layout");

/*
 * journal/checkpoint: names the checkpoint recovery starts from. Written by the
 * writer only after the checkpoint's END record is durable, as a temp file that is
 * synced and renamed (then the directory synced), so a reader sees the old or the
 * new pointer, never a mix. A missing pointer = replay from the first segment.
 */
#define JNL_CKPT_MAGIC 0x50434a48u /* "HJCP" */
struct jnl_ckpt_ptr {
    uint32_t magic;
    uint16_t version;
    uint16_t reserved;
    uint64_t begin_lsn;  /* LSN of the CKPT_BEGIN record */
    uint64_t begin_seq;  /* segment holding it */
    uint32_t begin_offset;
    uint32_t reserved2;
    uint64_t end_lsn;    /* LSN of the CKPT_END record */
    uint64_t first_live_seq;
    uint32_t reserved3;
    uint32_t crc; /* CRC32C of the bytes before */
};
_Static_assert(sizeof(struct jnl_ckpt_ptr) == 56, "ckpt pointer layout");

/*
 * Bindings journal: JNL_REC_BINDING_ADD payload. The three strings follow the
 * struct, in this order, without terminators. routing: 0 anycast, 1 multicast.
 */
struct jnl_binding {
    uint64_t queue_id;
    uint8_t routing;
    uint8_t durable;
    uint16_t address_len;
    uint16_t name_len;
    uint16_t filter_len;
};
_Static_assert(sizeof(struct jnl_binding) == 16, "binding layout");

#endif
