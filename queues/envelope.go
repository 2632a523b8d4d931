package queues

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// A message that failed and waits for its retry carries, instead of the original body, a retry
// envelope: the original body, the steps that already succeeded, and the last error. The
// consumer must rewrite the message anyway to set its backoff (Update Message always sends the
// text), so remembering progress costs no request, and the retry skips the steps that are done.
type retryEnvelope struct {
	Retry retryState `json:"platformRetry"`
	Body  string     `json:"body"`
}

type retryState struct {
	Done      []string `json:"done,omitempty"`
	LastError string   `json:"lastError,omitempty"`
}

const retryPrefix = `{"platformRetry":`

// maxReasonLen bounds an error carried in a message; the full error is in the logs.
const maxReasonLen = 2048

// decodeWire splits what the queue holds into the original body and the retry state.
func decodeWire(text string) (body string, st retryState) {
	if !strings.HasPrefix(text, retryPrefix) {
		return text, st
	}
	var env retryEnvelope
	if err := json.Unmarshal([]byte(text), &env); err != nil {
		return text, st // not ours after all: the original body happens to start the same way
	}
	return env.Body, env.Retry
}

// encodeWire is the text to store for a retry. When the envelope would not fit in a message it
// falls back to the original body: the retry then redoes finished steps (they are idempotent)
// rather than fail.
func encodeWire(body string, st retryState) string {
	if len(st.Done) == 0 && st.LastError == "" {
		return body
	}
	st.Done = slices.Clone(st.Done)
	slices.Sort(st.Done)
	st.LastError = clip(st.LastError, maxReasonLen)
	text := marshalCompact(retryEnvelope{Retry: st, Body: body})
	if len(text) > MaxMessageBytes {
		return body
	}
	return text
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
