// Package trail owns the decision trail's storage core: an append-only,
// crash-safe, tamper-evident log of decision and administrative records.
//
// A [FileLog] keeps one chain per trail store: a single RFC 6962 Merkle tree
// (hashed with golang.org/x/mod/sumdb/tlog) whose leaf n is the canonical JSON
// of the record with Seq n. The store directory holds three files:
//
//   - records.log: one frame per record, "LLLLLLLL CCCCCCCC <json>\n", where
//     L is the payload length and C its CRC-32C, both in hex. A torn final
//     frame is cut off on open; a damaged frame anywhere else is reported,
//     never repaired. With FileOptions.Compression zstd, a payload may
//     instead be "z<seq>,<dictionary seq>,<zstd bytes>" (newlines
//     byte-stuffed): the canonical record after {"seq":N, compressed with
//     the dictionary stored in record <dictionary seq> (kind
//     KindDictionary). The leaf is always the canonical record's hash.
//   - hashes.bin: the tree's stored hashes (tlog.StoredHashes), 32 bytes each,
//     so tree heads and proofs read O(log n) hashes. It is fsynced before each
//     checkpoint; the part after the latest checkpoint is recomputed from the
//     records on open.
//   - checkpoints.log: signed tree heads in the signed-note format (Ed25519,
//     golang.org/x/mod/sumdb/note), framed like records.
//
// Append is group-committed: concurrent callers are batched into one write and
// one fsync, and Append returns only once its records are durable. A failed
// write or fsync (a full disk) fails its batch and cuts the files back to the
// last acknowledged record; the next batch is tried afresh, so the log works
// again when the disk does. Run signs a checkpoint every
// DefaultCheckpointInterval (1s) while the tree grows, bounding how long a
// record stays unanchored (Report.Unanchored counts such records).
//
// Verify checks a trail against its signed checkpoints and names the first
// record that was changed, dropped, inserted or reordered. Prove and
// CheckProof produce and check inclusion proofs that a third party can verify
// with the public key alone.
//
// The log knows nothing of decisions: a record is a kind, an id, a time and
// an opaque JSON body. Canonical is written by hand and produces exactly
// what encoding/json's Marshal of a Record wrote (the only format so far);
// a body its writer guarantees canonical ([CompactRecord]) is copied, not
// compacted again. Package recorder writes the PDP's decision, search
// and administrative records into it; package pgtrail keeps the same chain
// in PostgreSQL.
//
// Retention ([FileLog.Prune], [FileLog.ApplyRetention]) turns old records
// of a kind into tombstones that carry their leaf hash, so the tree and
// every remaining record still verify. A [Redactor] stores chosen fields as
// keyed hashes or encrypted to the auditors (age); [Reveal] opens them for
// an auditor holding the identity.
//
// The auditor's commands (explain, query, replay, what-if) are in package
// audit, which reads the trail through Scan.
package trail
