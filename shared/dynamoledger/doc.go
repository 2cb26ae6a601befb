// Package dynamoledger is the upload.Ledger on DynamoDB. It uses only
// single-item conditional writes and reads, no transactions, so it runs
// unchanged against AWS and against dynalite, the local DynamoDB.
//
// # Items
//
// One table, keys pk (S, hash) and sk (S, range); TTL on expiresAt.
//
//	pk=U#<upload key>  sk=META        one per upload
//	    key, gen, status ("receiving" | "ready" | "assembling" | "complete" | "failed"),
//	    total, shards, full (NS), size, chunkSize, ns, ident, name, rel, ctype,
//	    created, updated (unix ms), expiresAt (unix s),
//	    owner, leaseUntil (unix ms), attempts, lastError, loc, bucket, object, rsize, etag,
//	    crc, rtype, rdisp (the finished file's checksum and how it is served), error, published,
//	    duePart, dueAt (unix ms; the due index, see due.go and begin.go)
//	pk=U#<upload key>  sk=S#<shard k, 6 digits>   one per 128 chunks
//	    gen, chunks (NS), expiresAt
//	pk=I#<identity key>  sk=ID        one per (namespace, identifier)
//	    uploadKey, claim, claimedAt (unix ms), expiresAt (see identity.go)
//
// Chunk n belongs to shard k = (n-1)/128, whose set chunks holds the numbers
// counted so far; the last shard holds the remainder. 128 chunks a shard is
// the size every Ledger uses; only the package's own tests set a smaller one,
// to reach several shards with a few chunks. META's shards is the
// number of shards, full the set of those known to be complete. gen is random
// per META item: a record re-created after expiry gets a new one, and shard
// items of an older generation are ignored everywhere and replaced when
// written. status is a string so that a DynamoDB stream filter can match
// {"status": {"S": ["ready"]}}; shard and identity items have no status, so
// the filter never lets them through.
//
// # Counting a chunk
//
// The chunk object is durable before Count runs. Count then:
//
//  1. learns the generation (cached per process, see below), creating META,
//     after the identity check, if there is none;
//  2. adds n to its shard's set, on the condition that the shard is absent
//     or of this generation; a shard of an older one is replaced by {n};
//  3. if the set now holds all of the shard's chunks, adds the shard to
//     META's full, on the condition that the record is receiving in this
//     generation;
//  4. if full now holds every shard, sets status=ready on the same condition
//     and tells the caller it made the upload ready. An upload of one shard
//     (up to 128 chunks: most) does steps 3 and 4 in one write.
//
// An upload of one chunk skips all of it: its only chunk is durable when
// Count runs, so its record is created ready, in one conditional put, with
// no shard item; and it claims no identity (only a receiving upload holds
// its identifier, and this one never receives), though it still answers
// 409 while another upload receives under its identifier.
//
// Sets make repeats harmless: a retry, a duplicate or a concurrent request
// adds a number that is there already, so a chunk is never counted twice nor
// lost, and the conditional write makes ready happen once, only after every
// chunk was added, which each request did after storing its chunk.
//
// A request that dies after filling a shard (step 2) and before registering
// it (step 3), or after registering the last shard and before setting ready
// (step 4), leaves work that no later chunk would do. Lookup therefore reads
// the chunks of a full shard that is not in full as not counted, and every
// chunk as not counted once full holds every shard while the record is still
// receiving. The client of the failed request sends its chunk again (flow.js
// retries a failed POST, and tests every chunk when an upload is resumed);
// the resend is stored and counted again, finds the shard full and does
// steps 3 and 4.
//
// # The generation cache
//
// Step 2 is conditioned on the shard's generation, not on META's, so the
// generation Count acts on must still be the record's. A record is deleted
// only by DynamoDB's TTL, so only once its updated is min(IdleTTL, DoneTTL)
// old: every write sets expiresAt at least that far past updated (the
// tests' RemoveExpired refuses younger records likewise). A generation read
// together with an updated younger than an eighth of that window is therefore
// still the record's for the rest of it (the margin covers slow requests and
// clocks that disagree); an older cache entry is confirmed first by a
// conditional write to META that sets updated and expiresAt afresh (the
// touch). The touch, and step 3, are also what keep a receiving upload alive:
// it expires at least 7/8 of IdleTTL, and at most IdleTTL, after its last
// chunk.
//
// # Cost
//
// Per chunk, Count makes one write: step 2, to an item of under 1 KB (1
// WRU). Each shard adds one write to META (step 3) and each upload one more
// (step 4), and each process counting an upload's chunks touches META about
// once every eighth of IdleTTL. Each Lookup (flow.js's test GET, and the
// service's check before storing) is one BatchGetItem of two items, META and
// the chunk's shard, and of the identity item too until the process has seen
// the record; it also fills the generation cache. The first chunk adds the
// record's creation: a read of the identity item (the state its claim swaps
// from) and two conditional puts (identity, META). The first write to a
// shard left by an older generation adds a read and a put. META grows by a
// few bytes per shard. A file of one chunk is counted with one write in all
// (its record, born ready, after a read of the identity item); with its
// claim, result and the mark that its event went out, it costs four.
package dynamoledger
