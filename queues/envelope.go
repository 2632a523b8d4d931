package queues

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// A message that failed and waits for its retry carries, instead of the original body, a retry
// envelope: the original body, the steps that already succeeded, and the last error. The
// consumer must rewrite the message anyway to set its backoff (Update Message always sends the
// text), so remembering progress costs no request, and the retry skips the steps that are done.
//
// Progress must not be forgeable by whoever can enqueue: a sender who could mark "history" done
// would skip the audit trail. A sender may even rewrite its own message (Put Message returns a
// pop receipt, and Update Message takes it). So the envelope is signed: an HMAC-SHA256, under a
// key only the worker reads (blobs.Key "retry-progress"), of the message's id (assigned by the
// queue service), the progress and the body. An envelope that does not verify — enqueued from
// outside, copied from another message, or signed with a key since replaced — is unwrapped,
// its progress and error dropped, and every step runs.
type retryEnvelope struct {
	Retry retryState `json:"platformRetry"`
	Body  string     `json:"body"`
}

type retryState struct {
	Done      []string `json:"done,omitempty"`
	LastError string   `json:"lastError,omitempty"`
	MAC       string   `json:"mac,omitempty"`
}

const retryPrefix = `{"platformRetry":`

// maxReasonLen bounds an error carried in a message; the full error is in the logs.
const maxReasonLen = 2048

// decodeWire splits what the queue holds, as message id, into the original body and the retry
// state, which counts only if it verifies under key. forged reports an envelope that does not:
// its body is unwrapped, but its progress and error are dropped, so every step runs.
func decodeWire(text, id string, key []byte) (body string, st retryState, forged bool) {
	if !strings.HasPrefix(text, retryPrefix) {
		return text, st, false
	}
	var env retryEnvelope
	if err := json.Unmarshal([]byte(text), &env); err != nil {
		return text, st, false // not ours after all: the original body happens to start the same way
	}
	want := signProgress(key, id, env.Body, env.Retry)
	if got, err := hex.DecodeString(env.Retry.MAC); err != nil || !hmac.Equal(got, want) {
		return env.Body, retryState{}, true
	}
	return env.Body, env.Retry, false
}

// encodeWire is the text to store for a retry of message id, its progress signed with key.
// When the envelope would not fit in a message it falls back to the original body: the retry
// then redoes finished steps (they are idempotent) rather than fail.
func encodeWire(body, id string, st retryState, key []byte) string {
	if len(st.Done) == 0 && st.LastError == "" {
		return body
	}
	st.Done = slices.Clone(st.Done)
	slices.Sort(st.Done)
	st.LastError = clip(st.LastError, maxReasonLen)
	st.MAC = hex.EncodeToString(signProgress(key, id, body, st))
	text := marshalCompact(retryEnvelope{Retry: st, Body: body})
	if len(text) > MaxMessageBytes {
		return body
	}
	return text
}

// signProgress is the HMAC of an envelope's content: every part length-prefixed, so that no
// two different envelopes sign the same bytes.
func signProgress(key []byte, id, body string, st retryState) []byte {
	mac := hmac.New(sha256.New, key)
	parts := append([]string{"platform retry progress v1", id, body, st.LastError}, st.Done...)
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		mac.Write(n[:])
		mac.Write([]byte(p))
	}
	return mac.Sum(nil)
}

// PoisonRecord is what a poison queue message holds: the original body, untouched, and why,
// where and after how many attempts it failed.
type PoisonRecord struct {
	Reason     string    `json:"reason"`
	Queue      string    `json:"queue"` // the queue it failed on, before the namespace
	Attempts   int64     `json:"attempts"`
	MessageID  string    `json:"messageId"`
	InsertedAt time.Time `json:"insertedAt"`
	FailedAt   time.Time `json:"failedAt"`
	Host       string    `json:"host,omitempty"`
	// Body is the original message text; BodyBlob names the blob (container event-payloads)
	// that holds it instead when the record would not fit in a message.
	Body     string `json:"body,omitempty"`
	BodyBlob string `json:"bodyBlob,omitempty"`
}

const poisonPrefix = `{"reason":`

// DecodePoison reads a poison message. ok is false for a message that is not a PoisonRecord
// (put there by hand, or by another tool): its text is then the original body.
func DecodePoison(text string) (rec PoisonRecord, ok bool) {
	if !strings.HasPrefix(text, poisonPrefix) {
		return PoisonRecord{Body: text}, false
	}
	if err := json.Unmarshal([]byte(text), &rec); err != nil || (rec.Body == "" && rec.BodyBlob == "") {
		return PoisonRecord{Body: text}, false
	}
	return rec, true
}

func marshalCompact(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // only plain structs of strings and numbers reach here
	return strings.TrimSuffix(buf.String(), "\n")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
