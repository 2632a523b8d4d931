// Package auth says who a request to the HTTP API is and what it may do: a Principal, with
// roles and the business units it may see, from an OIDC bearer token (Microsoft Entra ID or
// any issuer with discovery and a JWKS) or from a scoped API key (plk_…, stored as a hash in
// table ApiKeys). The API checks the role each route declares and filters by the business
// units; this package only authenticates and answers those two questions.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Role is what a principal may do; each API route needs exactly one.
type Role string

const (
	// NotificationsSend creates and cancels direct notification jobs.
	NotificationsSend Role = "notifications.send"
	// HistoryRead reads entity timelines.
	HistoryRead Role = "history.read"
	// Support traces keys ("why did this (not) send") and follows the change stream.
	Support Role = "support"
	// WebhooksManage adds, lists and disables webhook endpoints.
	WebhooksManage Role = "webhooks.manage"
	// AutomationsManage adds, changes, tests and explains automation rules, and lists, cancels
	// and replays agent runs.
	AutomationsManage Role = "automations.manage"
	// Admin may do everything; without business units of its own it sees every unit.
	Admin Role = "admin"
)

// Roles are every role, in the order they are documented.
var Roles = []Role{NotificationsSend, HistoryRead, Support, WebhooksManage, AutomationsManage, Admin}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("role %q: want one of %s", s, joinRoles())
}

func joinRoles() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Units are the business units a principal may see: every one (All), or those listed.
type Units struct {
	All bool
	IDs []int64
}

// AllUnits is the written form of Units.All.
const AllUnits = "*"

// ParseUnits reads "*" or a comma-separated list of business unit ids ("42,43").
func ParseUnits(s string) (Units, error) {
	var u Units
	for f := range strings.SplitSeq(s, ",") {
		if err := u.add(strings.TrimSpace(f)); err != nil {
			return Units{}, err
		}
	}
	return u, nil
}

// add adds one written unit: "*" or a positive integer.
func (u *Units) add(s string) error {
	if s == AllUnits {
		u.All, u.IDs = true, nil
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("business unit %q: want a positive integer or %s", s, AllUnits)
	}
	if !u.All && !slices.Contains(u.IDs, n) {
		u.IDs = append(u.IDs, n)
	}
	return nil
}

// String is the written form: "*", "42,43", or "" for none.
func (u Units) String() string {
	if u.All {
		return AllUnits
	}
	s := make([]string, len(u.IDs))
	for i, id := range u.IDs {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

// Principal is who a request comes from.
type Principal struct {
	// ID names the principal in audit lines: "key:{key id}", "token:{oid or sub}", or
	// "anonymous" (an unauthenticated request on a loopback listener with authentication off).
	ID    string
	Roles []Role
	Units Units
}

// Has reports whether the principal holds role r; admin holds every role.
func (p *Principal) Has(r Role) bool {
	return slices.Contains(p.Roles, r) || slices.Contains(p.Roles, Admin)
}

// AllUnits reports whether the principal sees every business unit: it was granted "*", or it
// is an admin granted no unit in particular.
func (p *Principal) AllUnits() bool {
	return p.Units.All || (len(p.Units.IDs) == 0 && slices.Contains(p.Roles, Admin))
}

// Sees reports whether the principal may see business unit id.
func (p *Principal) Sees(id int64) bool {
	return p.AllUnits() || slices.Contains(p.Units.IDs, id)
}

// Visible is Sees for a principal scoped to some units, nil for one that sees them all: the
// filter to hand a reader (nil reads everything).
func (p *Principal) Visible() func(int64) bool {
	if p.AllUnits() {
		return nil
	}
	return p.Sees
}

// Anonymous is the principal of a request without credentials when authentication is off
// (ModeOff, loopback only): a developer on the machine, who may do everything.
var Anonymous = &Principal{ID: "anonymous", Roles: []Role{Admin}, Units: Units{All: true}}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext is the principal ctx carries; nil when none.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

var (
	// ErrUnauthenticated: no credentials, or credentials that do not prove who sends them
	// (HTTP 401). The message says which, never the credential.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrUnavailable: what would check the credentials cannot be reached now: the identity
	// provider's discovery or keys, or storage (HTTP 503).
	ErrUnavailable = errors.New("authentication unavailable")
)

// refusal is an ErrUnauthenticated: reason is what the caller is told, detail what the log
// adds (a verifier's message may name the expected issuer or audience).
type refusal struct{ reason, detail string }

func (e *refusal) Error() string {
	if e.detail == "" {
		return e.reason
	}
	return e.reason + ": " + e.detail
}

func (e *refusal) Is(target error) bool { return target == ErrUnauthenticated }

func unauthenticated(reason string) error { return &refusal{reason: reason} }

func refused(reason string, detail error) error {
	return &refusal{reason: reason, detail: detail.Error()}
}

// Reason is what a caller may be told of err: an ErrUnauthenticated's reason without the
// verifier's detail.
func Reason(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.reason
	}
	return "unauthenticated"
}
