package authzen

import (
	"reflect"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

var (
	alice   = pdp.Entity{Type: "user", ID: "alice"}
	bob     = pdp.Entity{Type: "user", ID: "bob", Properties: map[string]any{"role": "admin"}}
	record2 = pdp.Entity{Type: "record", ID: "record-2", Properties: map[string]any{"status": "archived"}}
	rec1    = pdp.Entity{Type: "record", ID: "record-1"}
	rec2    = pdp.Entity{Type: "record", ID: "record-2"}
	read    = pdp.Action{Name: "read"}
	write   = pdp.Action{Name: "write"}
)

func TestDecodeEvaluations(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Batch
	}{
		{
			name: "c-3-4-2 no evaluations is a single request",
			body: rule1,
			want: Batch{Single: true, Semantic: ExecuteAll, Requests: []pdp.Request{{Subject: alice, Action: read, Resource: rec1}}},
		},
		{
			name: "c-3-4-3 empty evaluations is a single request",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"evaluations":[]}`,
			want: Batch{Single: true, Semantic: ExecuteAll, Requests: []pdp.Request{{Subject: alice, Action: read, Resource: rec1}}},
		},
		{
			name: "null evaluations is a single request",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"evaluations":null}`,
			want: Batch{Single: true, Semantic: ExecuteAll, Requests: []pdp.Request{{Subject: alice, Action: read, Resource: rec1}}},
		},
		{
			name: "c-3-2-1 resource per item",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},
				"evaluations":[{"resource":{"type":"record","id":"record-1"}},{"resource":{"type":"record","id":"record-2"}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: read, Resource: rec1},
				{Subject: alice, Action: read, Resource: rec2},
			}},
		},
		{
			name: "c-3-2-2 action per item",
			body: `{"subject":{"type":"user","id":"bob"},"resource":{"type":"record","id":"record-1"},
				"evaluations":[{"action":{"name":"read"}},{"action":{"name":"write"}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: pdp.Entity{Type: "user", ID: "bob"}, Action: read, Resource: rec1},
				{Subject: pdp.Entity{Type: "user", ID: "bob"}, Action: write, Resource: rec1},
			}},
		},
		{
			name: "c-3-2-4 subject per item",
			body: `{"action":{"name":"write"},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}},
				"evaluations":[{"subject":{"type":"user","id":"alice"}},{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: write, Resource: record2},
				{Subject: bob, Action: write, Resource: record2},
			}},
		},
		{
			name: "c-3-2-7 whole-entity replacement, no sub-field merge",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"write"},
				"resource":{"type":"record","id":"record-1","properties":{"status":"active","owner":"alice"}},
				"evaluations":[{},{"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: write, Resource: pdp.Entity{Type: "record", ID: "record-1", Properties: map[string]any{"status": "active", "owner": "alice"}}},
				{Subject: alice, Action: write, Resource: record2},
			}},
		},
		{
			name: "item entity without properties drops the default's properties",
			body: `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},
				"evaluations":[{"subject":{"type":"user","id":"bob"}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: pdp.Entity{Type: "user", ID: "bob"}, Action: read, Resource: rec1},
			}},
		},
		{
			name: "c-3-2-6 context replaced per item",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},
				"context":{"time":"t0","ip":"10.0.0.1"},
				"evaluations":[{},{"context":{"time":"t1"}},{"context":{}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: read, Resource: rec1, Context: map[string]any{"time": "t0", "ip": "10.0.0.1"}},
				{Subject: alice, Action: read, Resource: rec1, Context: map[string]any{"time": "t1"}},
				{Subject: alice, Action: read, Resource: rec1, Context: map[string]any{}},
			}},
		},
		{
			name: "c-3-4-1 incomplete item kept with zero resource",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"options":{"evaluations_semantic":"execute_all"},
				"evaluations":[{"resource":{"type":"record","id":"record-1"}},{}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: read, Resource: rec1},
				{Subject: alice, Action: read},
			}},
		},
		{
			name: "incomplete entities kept as given",
			body: `{"evaluations":[{"subject":{"type":"user"},"action":{},"resource":{"id":"x"}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: pdp.Entity{Type: "user"}, Resource: pdp.Entity{ID: "x"}},
			}},
		},
		{
			name: "fully specified items, unknown members ignored",
			body: `{"decision":true,"foo":1,"options":{"other":"x"},"evaluations":[
				{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"bar":[]},
				{"subject":{"type":"user","id":"bob"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"}}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{
				{Subject: alice, Action: read, Resource: rec1},
				{Subject: pdp.Entity{Type: "user", ID: "bob"}, Action: write, Resource: rec1},
			}},
		},
		{
			name: "deny_on_first_deny",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"options":{"evaluations_semantic":"deny_on_first_deny"},
				"evaluations":[{"resource":{"type":"record","id":"record-1"}}]}`,
			want: Batch{Semantic: DenyOnFirstDeny, Requests: []pdp.Request{{Subject: alice, Action: read, Resource: rec1}}},
		},
		{
			name: "permit_on_first_permit on a single request",
			body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"options":{"evaluations_semantic":"permit_on_first_permit"}}`,
			want: Batch{Single: true, Semantic: PermitOnFirstPermit, Requests: []pdp.Request{{Subject: alice, Action: read, Resource: rec1}}},
		},
		{
			name: "empty semantic is the default",
			body: `{"options":{"evaluations_semantic":""},"evaluations":[{}]}`,
			want: Batch{Semantic: ExecuteAll, Requests: []pdp.Request{{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEvaluations([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeEvaluations: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeEvaluationsInvalid(t *testing.T) {
	// Without items the batch endpoint validates like the single one.
	for _, tt := range invalidSingleBodies {
		t.Run("single/"+tt.name, func(t *testing.T) {
			_, err := DecodeEvaluations([]byte(tt.body))
			assertRequestError(t, err, tt.msg)
		})
	}
	tests := []struct {
		name, body, msg string
	}{
		{"evaluations is an object", `{"evaluations":{}}`, "evaluations must be an array"},
		{"evaluations is a string", `{"evaluations":"x"}`, "evaluations must be an array"},
		{"item is a number", `{"evaluations":[1]}`, "evaluations must be an object"},
		{"item is a string", `{"evaluations":[{},"x"]}`, "evaluations must be an object"},
		{"item is null", `{"evaluations":[{},null]}`, "evaluations[1] must be an object"},
		{"item subject is a string", `{"action":{"name":"read"},"evaluations":[{"subject":"alice"}]}`, "evaluations.subject must be an object"},
		{"item action name is a number", `{"evaluations":[{"action":{"name":123}}]}`, "evaluations.action.name must be a string"},
		{"item resource id is a number", `{"evaluations":[{"resource":{"type":"record","id":1}}]}`, "evaluations.resource.id must be a string"},
		{"item context is an array", `{"evaluations":[{"context":[]}]}`, "evaluations.context must be an object"},
		{"default subject is a string", `{"subject":"alice","evaluations":[{}]}`, "subject must be an object"},
		{"options is a string", `{"options":"x","evaluations":[{}]}`, "options must be an object"},
		{"semantic is a number", `{"options":{"evaluations_semantic":1},"evaluations":[{}]}`, "options.evaluations_semantic must be a string"},
		{"unknown semantic", `{"options":{"evaluations_semantic":"first_wins"},"evaluations":[{}]}`, "evaluations_semantic must be one of"},
		{"malformed item", `{"evaluations":[{"subject":{]}`, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvaluations([]byte(tt.body))
			assertRequestError(t, err, tt.msg)
		})
	}
}

func TestApplySemantic(t *testing.T) {
	ds := func(allowed ...bool) []pdp.Decision {
		out := make([]pdp.Decision, len(allowed))
		for i, a := range allowed {
			out[i] = pdp.Decision{Allowed: a}
		}
		return out
	}
	tests := []struct {
		name string
		s    Semantic
		in   []pdp.Decision
		want []pdp.Decision
	}{
		{"execute_all keeps all", ExecuteAll, ds(true, false, true), ds(true, false, true)},
		{"unknown keeps all", Semantic("x"), ds(false, false), ds(false, false)},
		{"deny_on_first_deny stops at the deny", DenyOnFirstDeny, ds(true, false, true), ds(true, false)},
		{"deny_on_first_deny first item", DenyOnFirstDeny, ds(false, true), ds(false)},
		{"deny_on_first_deny all permit", DenyOnFirstDeny, ds(true, true), ds(true, true)},
		{"permit_on_first_permit stops at the permit", PermitOnFirstPermit, ds(false, true, false), ds(false, true)},
		{"permit_on_first_permit first item", PermitOnFirstPermit, ds(true, false, false), ds(true)},
		{"permit_on_first_permit all deny", PermitOnFirstPermit, ds(false, false), ds(false, false)},
		{"empty", DenyOnFirstDeny, ds(), ds()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ApplySemantic(tt.s, tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
