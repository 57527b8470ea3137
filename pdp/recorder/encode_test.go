package recorder

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

// sampleRecord is a Cedar record with every kind of value.
func sampleRecord() types.Record {
	dec, _ := types.NewDecimalFromInt(int64(12))
	ip, _ := types.ParseIPAddr("10.0.0.0/8")
	return types.NewRecord(types.RecordMap{
		"amount":   types.Long(-250),
		"currency": types.String("EUR <&> \u2028 \"q\" \\ \x01 é"),
		"trusted":  types.True,
		"owner":    types.NewEntityUID("user", "alice"),
		"nested":   types.NewRecord(types.RecordMap{"b": types.Long(2), "a": types.String("x")}),
		"tags":     types.NewSet(types.String("b"), types.String("a")),
		"limit":    dec,
		"net":      ip,
		"when":     types.NewDatetime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		"for":      types.NewDuration(90 * time.Minute),
		"empty":    types.Record{},
	})
}

func sampleEntity(id string) types.Entity {
	return types.Entity{
		UID:        types.NewEntityUID("user", types.String(id)),
		Parents:    types.NewEntityUIDSet(types.NewEntityUID("segment", "z"), types.NewEntityUID("group", "b"), types.NewEntityUID("group", "a")),
		Attributes: sampleRecord(),
		Tags:       types.NewRecord(types.RecordMap{"t": types.String("v")}),
	}
}

func sampleAnyMap() map[string]any {
	return map[string]any{
		"n": json.Number("12.50"), "i": json.Number("-0"), "f": 1e21, "g": 0.000001, "h": 1e-7, "k": 3.0,
		"s": "<script>&\u2029\t\b\f\x7f\xff", "b": false, "z": nil, "int": 7, "i64": int64(-9),
		"list": []any{json.Number("1"), "two", []any{}, map[string]any{}}, "obj": map[string]any{"y": true, "x": "ü"},
		"emptylist": []any(nil),
	}
}

// corpus is a set of decision bodies covering every field, the omitted
// ones and the edge cases of string and number encoding.
func corpus() map[string]DecisionBody {
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 123456789, time.UTC)
	full := DecisionBody{
		Decision: pdp.Decision{
			ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Time: t0, Allowed: true, Application: "mobile-banking",
			Policies: []string{"owner-pays"}, Reasons: []string{}, Obligations: []string{"step_up_authentication"},
			Errors:        []pdp.EvalError{{PolicyID: "p1", Message: "type error: <bad>"}},
			PolicyVersion: policy.Version{Hash: "sha256:abc", Commit: "9fceb02"},
			Facts: []pdp.Fact{
				{FactCheck: pdp.FactCheck{ResourceType: "account", ResourceID: "acc-alice", Permission: "owner", SubjectType: "user", SubjectID: "alice"}, Has: true},
				{FactCheck: pdp.FactCheck{ResourceType: "account", ResourceID: "acc-alice", Permission: "delegate", SubjectType: "user", SubjectID: "bob",
					Context: map[string]any{"amount": json.Number("250")}}, Conditional: true, MissingContext: []string{"currency", "now"}},
			},
			FactsRevision: "GhUKEzE3MzM1ODQ4MDAwMDAwMDAwMDA=",
			Delegation:    &pdp.DelegationProof{OnBehalfOf: pdp.ObjectRef{Type: "user", ID: "alice"}, Status: "active", Chain: []string{"poa-alice-bob"}, Considered: []string{"poa-alice-bob", "x"}, Basis: "power_of_attorney"},
			Consent: &pdp.ConsentFact{Subject: pdp.ObjectRef{Type: "user", ID: "alice"}, Purpose: "marketing", Allowed: false, Status: "withdrawn",
				Reason: "consent_withdrawn", Basis: "consent", GrantID: "g-1", Position: 42, Detail: "withdrawn at 2026-12-01"},
			Input: pdp.Input{
				Principal: types.NewEntityUID("user", "bob"), Action: types.NewEntityUID("Action", "make_payment"), Resource: types.NewEntityUID("account", "acc-alice"),
				Context:  sampleRecord(),
				Entities: []types.Entity{sampleEntity("bob"), {UID: types.NewEntityUID("account", "acc-alice")}},
			},
			Duration: 48213 * time.Nanosecond,
			Message:  "line one\nline two",
		},
		Request: pdp.Request{
			Subject:     pdp.Entity{Type: "user", ID: "bob", Properties: sampleAnyMap()},
			Action:      pdp.Action{Name: "make_payment", Properties: map[string]any{"channel": "mobile"}},
			Resource:    pdp.Entity{Type: "account", ID: "acc-alice"},
			Context:     map[string]any{"amount": json.Number("250"), "currency": "EUR", "on_behalf_of": map[string]any{"type": "user", "id": "alice"}},
			Application: "never written",
		},
		Instance: "pdp-1", Build: "v1.2.3",
	}
	minimal := DecisionBody{Decision: pdp.Decision{ID: "x", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))}}
	deny := full
	deny.Decision.Allowed, deny.Decision.Policies, deny.Decision.Reasons = false, []string{}, []string{"not_permitted"}
	deny.Decision.Delegation, deny.Decision.Consent, deny.Decision.Errors, deny.Decision.Facts = nil, nil, nil, nil
	deny.Decision.Input.Entities = []types.Entity{}
	deny.Decision.Input.Context = types.Record{}
	deny.Request.Subject.Properties = map[string]any{}
	return map[string]DecisionBody{"full": full, "minimal": minimal, "deny": deny}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncoderMatchesJSON: the hand-written encoder writes, byte for byte,
// what encoding/json writes (the format every record so far was written
// in), for the corpus here and for the recorded Northbank and Todo
// decisions in testdata/records (golden files, from a real PDP's trail).
func TestEncoderMatchesJSON(t *testing.T) {
	for name, b := range corpus() {
		t.Run(name, func(t *testing.T) {
			want := mustMarshal(t, b)
			got, err := encodeDecisionBody(&b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("hand-written encoding differs from encoding/json:\n got %s\nwant %s", got, want)
			}
		})
	}
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden records in testdata/records: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
				b := decodeBody(t, line)
				got, err := encodeDecisionBody(&b)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, line) {
					t.Fatalf("record %d: re-encoding changes its bytes:\n got %s\nwant %s", i, got, line)
				}
				if old := mustMarshal(t, b); !bytes.Equal(old, line) {
					t.Fatalf("record %d: encoding/json changes its bytes:\n got %s\nwant %s", i, old, line)
				}
			}
		})
	}
}

func decodeBody(t testing.TB, line []byte) DecisionBody {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var b DecisionBody
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decode %s: %v", line, err)
	}
	return b
}

// TestEncoderCoversEveryField fills every exported field of the decision
// record's types, by reflection, and compares the two encoders: a field
// added to pdp.Decision, pdp.Request or anything they hold (and so to
// encoding/json's output) and not to the hand-written encoder fails here.
// It also names the fields it found, so that the failure says which one.
func TestEncoderCoversEveryField(t *testing.T) {
	var b DecisionBody
	fill(reflect.ValueOf(&b).Elem(), 0)
	want := mustMarshal(t, b)
	got, err := encodeDecisionBody(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the hand-written encoder (pdp/recorder/encode.go) does not cover every field:\n got %s\nwant %s", got, want)
	}
	var fields []string
	listFields(reflect.TypeOf(b), map[reflect.Type]bool{}, &fields)
	slices.Sort(fields)
	known := slices.Sorted(slices.Values(encodedFields))
	if !slices.Equal(fields, known) {
		added, removed := diff(fields, encodedFields), diff(encodedFields, fields)
		t.Errorf("the decision record's fields changed: new %v, gone %v; encode them in pdp/recorder/encode.go, then update encodedFields", added, removed)
	}
}

// encodedFields are the fields encode.go writes, as listFields names them.
var encodedFields = []string{
	// Through encoding/json (appendJSON): dormancy findings, risk signals.
	"Decision.Dormancy", "Decision.Signals", "DelegationProof.Since", "Finding.Delegation", "Finding.Effect", "Finding.IdleDays", "Finding.Kind", "Finding.LastActivity", "Finding.LimitDays", "Finding.Obligation", "Finding.Reason", "Finding.Revalidation", "Finding.Rule", "Finding.Subject", "Ref.ID", "Ref.Type", "RevalidationRef.At", "RevalidationRef.By", "RevalidationRef.ID", "RevalidationRef.Source", "SignalFact.Count", "SignalFact.Effect", "SignalFact.Entity", "SignalFact.Event", "SignalFact.EventTime", "SignalFact.JTI", "SignalFact.Outcome", "SignalFact.Position", "SignalFact.Reason", "SignalFact.Role", "SignalFact.Rule", "SignalFact.Session", "SignalFact.Subject", "SignalFact.Transmitter", "SignalFact.Window", "SubjectID.Application", "SubjectID.Device", "SubjectID.Email", "SubjectID.Format", "SubjectID.Group", "SubjectID.ID", "SubjectID.Identifiers", "SubjectID.Iss", "SubjectID.OrgUnit", "SubjectID.PhoneNumber", "SubjectID.Session", "SubjectID.Sub", "SubjectID.Tenant", "SubjectID.URI", "SubjectID.URL", "SubjectID.User",
	"ConsentFact.Allowed", "ConsentFact.Basis", "ConsentFact.Detail", "ConsentFact.GrantID", "ConsentFact.Position", "ConsentFact.Purpose",
	"ConsentFact.Reason", "ConsentFact.Status", "ConsentFact.Subject",
	"Decision.Allowed", "Decision.Application", "Decision.Consent", "Decision.Delegation", "Decision.Duration", "Decision.Errors",
	"Decision.Facts", "Decision.FactsRevision", "Decision.ID", "Decision.Input", "Decision.Message", "Decision.Obligations",
	"Decision.PolicyVersion", "Decision.Policies", "Decision.Reasons", "Decision.Time",
	"DecisionBody.Build", "DecisionBody.Decision", "DecisionBody.Instance", "DecisionBody.Request",
	"DelegationProof.Basis", "DelegationProof.Chain", "DelegationProof.Considered", "DelegationProof.OnBehalfOf", "DelegationProof.Status",
	"EvalError.Message", "EvalError.PolicyID",
	"Fact.Conditional", "Fact.FactCheck", "Fact.Has", "Fact.MissingContext",
	"FactCheck.Context", "FactCheck.Permission", "FactCheck.ResourceID", "FactCheck.ResourceType", "FactCheck.SubjectID", "FactCheck.SubjectType",
	"Input.Action", "Input.Context", "Input.Entities", "Input.Principal", "Input.Resource",
	"ObjectRef.ID", "ObjectRef.Type",
	"Request.Action", "Request.Application", "Request.Context", "Request.Resource", "Request.Subject",
	"Version.Commit", "Version.Hash",
	"pdp.Action.Name", "pdp.Action.Properties", "pdp.Entity.ID", "pdp.Entity.Properties", "pdp.Entity.Type",
}

func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

var (
	typTime     = reflect.TypeFor[time.Time]()
	typRecord   = reflect.TypeFor[types.Record]()
	typEntity   = reflect.TypeFor[types.Entity]()
	typUID      = reflect.TypeFor[types.EntityUID]()
	typAnyMap   = reflect.TypeFor[map[string]any]()
	cedarPkg    = typRecord.PkgPath()
	ambiguousNm = map[string]bool{"Entity": true, "Action": true} // pdp's and Cedar's
)

// listFields names the exported struct fields reachable from t outside the
// Cedar and standard library types (those have encoders of their own).
func listFields(t reflect.Type, seen map[reflect.Type]bool, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() == cedarPkg || t == typTime {
		return
	}
	seen[t] = true
	name := t.Name()
	if ambiguousNm[name] {
		name = "pdp." + name
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		*out = append(*out, name+"."+f.Name)
		listFields(f.Type, seen, out)
	}
}

// fill sets every exported field reachable from v to a non-zero value.
func fill(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Type() {
	case typTime:
		v.Set(reflect.ValueOf(time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)))
		return
	case typRecord:
		v.Set(reflect.ValueOf(sampleRecord()))
		return
	case typEntity:
		v.Set(reflect.ValueOf(sampleEntity("e")))
		return
	case typUID:
		v.Set(reflect.ValueOf(types.NewEntityUID("T", "id")))
		return
	case typAnyMap:
		v.Set(reflect.ValueOf(sampleAnyMap()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s-" + strings.ToLower(v.Type().Name()) + "<&>")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(math.MaxInt32 + 7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.25)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf("any"))
	}
}

// TestEncoderErrors: what encoding/json refuses, the encoder refuses.
func TestEncoderErrors(t *testing.T) {
	cases := map[string]func(*DecisionBody){
		"reserved key": func(b *DecisionBody) {
			b.Decision.Input.Context = types.NewRecord(types.RecordMap{"__extn": types.Long(1)})
		},
		"NaN":            func(b *DecisionBody) { b.Request.Context = map[string]any{"x": math.NaN()} },
		"bad number":     func(b *DecisionBody) { b.Request.Context = map[string]any{"x": json.Number("01")} },
		"year 10000":     func(b *DecisionBody) { b.Decision.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"unsupported fn": func(b *DecisionBody) { b.Request.Context = map[string]any{"x": func() {}} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := corpus()["minimal"]
			mutate(&b)
			if _, err := json.Marshal(b); err == nil {
				t.Fatal("encoding/json accepts it; the case is wrong")
			}
			if _, err := encodeDecisionBody(&b); err == nil {
				t.Fatal("the hand-written encoder accepts what encoding/json refuses")
			}
		})
	}
}

// FuzzEncodeDecisionBody decodes arbitrary JSON as a decision body (as
// readers of the trail do) and checks that both encoders agree on it.
func FuzzEncodeDecisionBody(f *testing.F) {
	for _, b := range corpus() {
		f.Add(mustMarshal(f, b))
	}
	if raw, err := os.ReadFile(filepath.Join("testdata", "records", "northbank.json")); err == nil {
		for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var b DecisionBody
		if dec.Decode(&b) != nil {
			return
		}
		want, werr := json.Marshal(b)
		got, gerr := encodeDecisionBody(&b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, hand-written encoder error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("encodings differ:\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkEncodeDecisionBody compares the two encoders on a recorded
// Northbank decision (bob pays for alice: delegation, consent, facts).
func BenchmarkEncodeDecisionBody(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "records", "northbank.json"))
	if err != nil {
		b.Fatal(err)
	}
	body := decodeBody(b, bytes.SplitN(raw, []byte("\n"), 2)[0])
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeDecisionBody(&body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
