package relations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrCheckItem wraps the error SpiceDB reported for one item of a bulk
// check (an unknown permission, a bad caveat context, …). The whole check
// fails: a decision never rests on part of its facts.
var ErrCheckItem = errors.New("relations: check item failed")

// Object names one object of the graph, such as account:acc-42 or user:alice.
type Object struct {
	Type string
	ID   string
}

func (o Object) String() string { return o.Type + ":" + o.ID }

// Check asks whether Subject (or, with SubjectRelation, the subject set
// Subject#SubjectRelation) has Permission (a permission or relation of the
// SpiceDB schema) on Resource. Context supplies the values of caveat
// parameters that were not fixed when the relationship was written (values
// written with the relationship win).
type Check struct {
	Resource        Object
	Permission      string
	Subject         Object
	SubjectRelation string
	Context         map[string]any
}

// String renders the check as resource#permission@subject, without context.
func (c Check) String() string {
	s := c.Resource.String() + "#" + c.Permission + "@" + c.Subject.String()
	if c.SubjectRelation != "" {
		s += "#" + c.SubjectRelation
	}
	return s
}

// Result is SpiceDB's answer to one Check. Conditional means the answer
// depends on caveat parameters that were missing (named in MissingContext):
// Has is false then, and a conditional fact must never be read as "has".
type Result struct {
	Check          Check
	Has            bool
	Conditional    bool
	MissingContext []string
}

// Results answers the checks of one CheckBulk call, in the order asked.
// Revision is the ZedToken of the snapshot every answer was read at, for the
// decision record.
type Results struct {
	Items    []Result
	Revision string
}

// Consistency says which snapshot of the facts a check may read. With Exact
// set it reads exactly that snapshot; otherwise one at least as fresh as
// AtLeast, and the newest one when AtLeast is empty too. There is no
// "minimize latency" mode: a read may never miss a write whose token the
// reader holds.
type Consistency struct {
	AtLeast string
	Exact   string
}

// Checker answers relationship checks in one round trip. SpiceDB itself and
// the FactCache in front of it both implement it.
type Checker interface {
	CheckBulkAt(ctx context.Context, checks []Check, at Consistency) (Results, error)
}

// spiceChecker is the Checker that asks SpiceDB.
type spiceChecker struct {
	perms   v1.PermissionsServiceClient
	timeout time.Duration
}

var _ Checker = (*spiceChecker)(nil)

// CheckBulkAt sends all checks in one CheckBulkPermissions call (a single
// check in one CheckPermission call, which costs SpiceDB less: no grouping,
// hashing or task runner). Any error, for the call or for one item, fails
// the whole call.
func (c *spiceChecker) CheckBulkAt(ctx context.Context, checks []Check, at Consistency) (Results, error) {
	if len(checks) == 1 {
		return c.checkOne(ctx, checks[0], at)
	}
	if len(checks) > MaxBulkItems {
		return c.checkChunked(ctx, checks, at)
	}
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(checks))
	for i, ch := range checks {
		item, err := checkToProto(ch)
		if err != nil {
			return Results{}, fmt.Errorf("relations: check %d (%s): %w", i, ch, err)
		}
		items[i] = item
	}
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := retryRead(ctx, func() (*v1.CheckBulkPermissionsResponse, error) {
		return c.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{
			Consistency: consistencyToProto(at),
			Items:       items,
		})
	})
	if err != nil {
		return Results{}, fmt.Errorf("relations: check: %w", err)
	}
	if len(resp.GetPairs()) != len(checks) {
		return Results{}, fmt.Errorf("relations: check: %d answers for %d checks", len(resp.GetPairs()), len(checks))
	}
	out := Results{Items: make([]Result, len(checks)), Revision: resp.GetCheckedAt().GetToken()}
	for i, pair := range resp.GetPairs() {
		if e := pair.GetError(); e != nil {
			return Results{}, fmt.Errorf("%w: %d (%s): %w", ErrCheckItem, i, checks[i], status.ErrorProto(e))
		}
		r := Result{Check: checks[i]}
		item := pair.GetItem()
		switch item.GetPermissionship() {
		case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
			r.Has = true
		case v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION:
		case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
			r.Conditional = true
			r.MissingContext = missingContext(item.GetPartialCaveatInfo())
		default:
			return Results{}, fmt.Errorf("%w: %d (%s): no answer (%v)", ErrCheckItem, i, checks[i], item.GetPermissionship())
		}
		out.Items[i] = r
	}
	return out, nil
}

// checkOne answers one check through CheckPermission, with the same
// consistency, caveat context, result and revision as a bulk call of one
// item. SpiceDB reports an error of the item (an unknown permission, a bad
// caveat context) as the error of the call; the codes it uses for those
// are wrapped in ErrCheckItem, as a bulk call's item errors are.
func (c *spiceChecker) checkOne(ctx context.Context, ch Check, at Consistency) (Results, error) {
	item, err := checkToProto(ch)
	if err != nil {
		return Results{}, fmt.Errorf("relations: check 0 (%s): %w", ch, err)
	}
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := retryRead(ctx, func() (*v1.CheckPermissionResponse, error) {
		return c.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
			Consistency: consistencyToProto(at),
			Resource:    item.Resource,
			Permission:  item.Permission,
			Subject:     item.Subject,
			Context:     item.Context,
		})
	})
	if err != nil {
		if itemError(err) {
			return Results{}, fmt.Errorf("%w: 0 (%s): %w", ErrCheckItem, ch, err)
		}
		return Results{}, fmt.Errorf("relations: check: %w", err)
	}
	r := Result{Check: ch}
	switch resp.GetPermissionship() {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		r.Has = true
	case v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION:
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		r.Conditional = true
		r.MissingContext = missingContext(resp.GetPartialCaveatInfo())
	default:
		return Results{}, fmt.Errorf("%w: 0 (%s): no answer (%v)", ErrCheckItem, ch, resp.GetPermissionship())
	}
	return Results{Items: []Result{r}, Revision: resp.GetCheckedAt().GetToken()}, nil
}

// itemError reports whether SpiceDB refused a check for what it asks
// (schema, arguments, caveat context) rather than failed to answer it.
func itemError(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.OutOfRange:
		return true
	}
	return false
}

// missingContext lists the missing caveat parameters once each, sorted
// (SpiceDB names a parameter once per caveat that lacks it).
func missingContext(info *v1.PartialCaveatInfo) []string {
	return slices.Compact(slices.Sorted(slices.Values(info.GetMissingRequiredContext())))
}

// head returns a token of the newest revision: a bulk check of nothing,
// fully consistent, costs one round trip and needs no schema.
func (c *spiceChecker) head(ctx context.Context) (string, error) {
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := retryRead(ctx, func() (*v1.CheckBulkPermissionsResponse, error) {
		return c.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{
			Consistency: consistencyToProto(Consistency{}),
		})
	})
	if err != nil {
		return "", fmt.Errorf("relations: read head revision: %w", err)
	}
	if resp.GetCheckedAt().GetToken() == "" {
		return "", errors.New("relations: read head revision: no token in the answer")
	}
	return resp.GetCheckedAt().GetToken(), nil
}

func checkToProto(c Check) (*v1.CheckBulkPermissionsRequestItem, error) {
	item := &v1.CheckBulkPermissionsRequestItem{
		Resource:   &v1.ObjectReference{ObjectType: c.Resource.Type, ObjectId: c.Resource.ID},
		Permission: c.Permission,
		Subject: &v1.SubjectReference{
			Object:           &v1.ObjectReference{ObjectType: c.Subject.Type, ObjectId: c.Subject.ID},
			OptionalRelation: c.SubjectRelation,
		},
	}
	if len(c.Context) > 0 {
		s, err := toStruct(c.Context)
		if err != nil {
			return nil, err
		}
		item.Context = s
	}
	return item, nil
}

func consistencyToProto(at Consistency) *v1.Consistency {
	switch {
	case at.Exact != "":
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: at.Exact}}}
	case at.AtLeast != "":
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: at.AtLeast}}}
	default:
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
}

// checkKey identifies a check, caveat context included (canonically
// encoded), for the fact cache.
func checkKey(c Check) (string, error) {
	var b strings.Builder
	b.Grow(len(c.Resource.Type) + len(c.Resource.ID) + len(c.Permission) + len(c.Subject.Type) + len(c.Subject.ID) + len(c.SubjectRelation) + 6)
	b.WriteString(c.Resource.Type)
	b.WriteByte(':')
	b.WriteString(c.Resource.ID)
	b.WriteByte('#')
	b.WriteString(c.Permission)
	b.WriteByte('@')
	b.WriteString(c.Subject.Type)
	b.WriteByte(':')
	b.WriteString(c.Subject.ID)
	b.WriteByte('#')
	b.WriteString(c.SubjectRelation)
	if len(c.Context) > 0 {
		ctx, err := canonicalContext(c.Context)
		if err != nil {
			return "", err
		}
		b.WriteByte(0)
		b.WriteString(ctx)
	}
	return b.String(), nil
}

// withTimeout bounds ctx by d unless it already has a deadline.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// MaxBulkItems is the most items SpiceDB takes in one CheckBulkPermissions
// call (v1.56.2 refuses more).
const MaxBulkItems = 10_000

// checkChunked asks more checks than one call may carry: the first chunk
// at the requested consistency, the others at exactly the revision the
// first was read at, so that the whole answer reflects one snapshot.
func (c *spiceChecker) checkChunked(ctx context.Context, checks []Check, at Consistency) (Results, error) {
	out := Results{Items: make([]Result, 0, len(checks))}
	for start := 0; start < len(checks); start += MaxBulkItems {
		part, err := c.CheckBulkAt(ctx, checks[start:min(start+MaxBulkItems, len(checks))], at)
		if err != nil {
			return Results{}, err
		}
		if start == 0 {
			out.Revision = part.Revision
			at = Consistency{Exact: part.Revision}
		}
		out.Items = append(out.Items, part.Items...)
	}
	return out, nil
}
