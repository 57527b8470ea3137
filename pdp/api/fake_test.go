package api

import (
	"context"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/google/uuid"
)

// fakeDecider implements the AuthZEN certification fixture's rules directly
// in Go (mirroring examples/authzen-certification/policies), so that the
// HTTP layer can be checked against the certification list without the
// Cedar engine:
//
//   - every user may read every record;
//   - alice may write active records;
//   - an admin may write archived records;
//   - who may write a record may delete it, but only softly
//     (action.properties.soft == true).
//
// bob's role and the records' statuses come from request properties, else
// from the fixture's entities. A request with an empty subject, action or
// resource is denied with reason invalid_input, as the engine does.
type fakeDecider struct {
	mu   sync.Mutex
	fail error    // returned by every call when set
	apps []string // Application of every request decided, in order
}

var _ pdp.Decider = (*fakeDecider)(nil)

// fixtureAttrs are the fixture's entity attributes.
var fixtureAttrs = map[string]map[string]any{
	"user/bob":        {"role": "admin"},
	"record/record-1": {"status": "active"},
	"record/record-2": {"status": "archived"},
}

func attr(e pdp.Entity, name string) any {
	if v, ok := e.Properties[name]; ok {
		return v
	}
	return fixtureAttrs[e.Type+"/"+e.ID][name]
}

func (f *fakeDecider) Decide(_ context.Context, req pdp.Request) (pdp.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return pdp.Decision{}, f.fail
	}
	f.apps = append(f.apps, req.Application)
	return decide(req), nil
}

func (f *fakeDecider) DecideBatch(ctx context.Context, reqs []pdp.Request) ([]pdp.Decision, error) {
	out := make([]pdp.Decision, len(reqs))
	for i, r := range reqs {
		d, err := f.Decide(ctx, r)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// failWith makes every later call fail with err (nil to stop failing).
func (f *fakeDecider) failWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// applications returns the Application of every request decided so far.
func (f *fakeDecider) applications() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.apps...)
}

func decide(req pdp.Request) pdp.Decision {
	d := pdp.Decision{
		ID:            uuid.NewString(),
		Time:          time.Now(),
		Application:   req.Application,
		PolicyVersion: policy.Version{Hash: "fakehash", Commit: "fakecommit"},
		Duration:      3 * time.Microsecond,
	}
	if req.Subject.Type == "" || req.Subject.ID == "" || req.Action.Name == "" ||
		req.Resource.Type == "" || req.Resource.ID == "" {
		d.Reasons = []string{pdp.ReasonInvalidInput}
		d.Message = "subject, action and resource are required"
		return d
	}
	alice := req.Subject.Type == "user" && req.Subject.ID == "alice"
	admin := attr(req.Subject, "role") == "admin"
	record := req.Resource.Type == "record"
	active := record && attr(req.Resource, "status") == "active"
	archived := record && attr(req.Resource, "status") == "archived"
	canWrite := (alice && active) || (admin && archived)
	switch req.Action.Name {
	case "read":
		d.Allowed = req.Subject.Type == "user" && record
		d.Policies = []string{"cert-read"}
	case "write":
		d.Allowed = canWrite
		d.Policies = []string{"cert-write"}
	case "delete":
		if req.Action.Properties["soft"] != true {
			d.Policies = []string{"cert-forbid-hard-delete"}
			d.Reasons = []string{"hard_delete_forbidden"}
			return d
		}
		d.Allowed = canWrite
		d.Policies = []string{"cert-delete-as-writer"}
	}
	if !d.Allowed {
		d.Policies = nil
		d.Reasons = []string{pdp.ReasonNotPermitted}
	}
	return d
}

// fakePolicies is a PolicyStatus whose status tests can change.
type fakePolicies struct {
	mu sync.Mutex
	st policy.Status
}

var _ PolicyStatus = (*fakePolicies)(nil)

func (p *fakePolicies) Status() policy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *fakePolicies) set(st policy.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st = st
}

func loadedPolicies() *fakePolicies {
	return &fakePolicies{st: policy.Status{
		Active:   policy.Version{Hash: "fakehash", Commit: "fakecommit"},
		LoadedAt: time.Unix(1700000000, 0).UTC(),
		Source:   "testdata",
		Policies: 5,
		Reloads:  1,
	}}
}
