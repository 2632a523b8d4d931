// Package platform holds the canonical types every other package shares: the EntityEvent wire
// format, the deterministic keys derived from it, storage naming under a namespace (each a
// section of docs/contracts.md), the job, message and history row models and the error kinds
// that decide a message's fate.
//
// It imports no storage SDK and does no I/O: queues/, tables/ and blobs/ own the storage edge,
// worker/ and its packages own the pipeline, mappings/ owns what each event type means.
package platform
