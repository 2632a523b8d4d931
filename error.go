package platform

import "errors"

// Storage outcomes, translated from service errors at the storage edge so that worker/ and
// mappings/ never see an SDK type.
var (
	// ErrExists: the row, queue or blob to create is already there (409).
	ErrExists = errors.New("already exists")
	// ErrConflict: a conditional write lost to a concurrent one (412, ETag mismatch).
	ErrConflict = errors.New("condition not met")
	// ErrNotFound: the row, message or blob is not there (404).
	ErrNotFound = errors.New("not found")
)

// ErrInvalidInput: a request that breaks a rule, from a person or a calling service (the CLI
// exits 2, the HTTP API answers 400). Every concern's input errors wrap it.
var ErrInvalidInput = errors.New("invalid input")

// permanentError marks an error that no retry can fix: bad input, an unknown type.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the consumer sends its message to the poison queue at once
// instead of retrying it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether any error in err's tree was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// FieldError is a rule of the wire format (docs/contracts.md, "EntityEvent wire format") that a
// message breaks. It names the field so that a poison message says exactly what to fix.
type FieldError struct {
	Field   string // the wire name, camelCase
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }
