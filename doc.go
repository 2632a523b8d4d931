// Package platform holds the canonical types every other package shares: the EntityEvent wire
// format (DESIGN §3), the deterministic keys derived from it (§4), storage naming under a
// namespace (§5), the history row model and the error kinds that decide a message's fate.
//
// It imports no storage SDK and does no I/O: queues/, tables/ and blobs/ own the storage edge,
// worker/ owns the pipeline, mappings/ owns what each event type means.
package platform
