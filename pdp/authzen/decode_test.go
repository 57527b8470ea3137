package authzen

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

const rule1 = `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`

func TestDecodeEvaluationValid(t *testing.T) {
	tests := []struct {
		name string
		body string
		want pdp.Request
	}{
		{
			name: "minimal",
			body: rule1,
			want: pdp.Request{
				Subject:  pdp.Entity{Type: "user", ID: "alice"},
				Action:   pdp.Action{Name: "read"},
				Resource: pdp.Entity{Type: "record", ID: "record-1"},
			},
		},
		{
			name: "context and properties, integers kept exact",
			body: `{"subject":{"type":"user","id":"alice","properties":{"department":"Sales","level":9007199254740993}},
				"action":{"name":"delete","properties":{"soft":true}},
				"resource":{"type":"record","id":"record-1","properties":{"status":"active","tags":["a"]}},
				"context":{"time":"1985-10-26T01:22-07:00","ip":"192.168.1.1","n":1.5}}`,
			want: pdp.Request{
				Subject:  pdp.Entity{Type: "user", ID: "alice", Properties: map[string]any{"department": "Sales", "level": json.Number("9007199254740993")}},
				Action:   pdp.Action{Name: "delete", Properties: map[string]any{"soft": true}},
				Resource: pdp.Entity{Type: "record", ID: "record-1", Properties: map[string]any{"status": "active", "tags": []any{"a"}}},
				Context:  map[string]any{"time": "1985-10-26T01:22-07:00", "ip": "192.168.1.1", "n": json.Number("1.5")},
			},
		},
		{
			name: "unknown members ignored everywhere",
			body: `{"foo":"bar","futureField":{"nested":true},
				"subject":{"type":"user","id":"alice","extra":[1,2]},
				"action":{"name":"read","x":null},
				"resource":{"type":"record","id":"record-1","owner":{"a":1}}}`,
			want: pdp.Request{
				Subject:  pdp.Entity{Type: "user", ID: "alice"},
				Action:   pdp.Action{Name: "read"},
				Resource: pdp.Entity{Type: "record", ID: "record-1"},
			},
		},
		{
			name: "null properties and context are absent",
			body: `{"subject":{"type":"user","id":"alice","properties":null},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":null}`,
			want: pdp.Request{
				Subject:  pdp.Entity{Type: "user", ID: "alice"},
				Action:   pdp.Action{Name: "read"},
				Resource: pdp.Entity{Type: "record", ID: "record-1"},
			},
		},
		{
			name: "surrounding whitespace",
			body: "\n\t " + rule1 + " \r\n",
			want: pdp.Request{
				Subject:  pdp.Entity{Type: "user", ID: "alice"},
				Action:   pdp.Action{Name: "read"},
				Resource: pdp.Entity{Type: "record", ID: "record-1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEvaluation([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeEvaluation: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// invalidSingleBodies are bodies every single evaluation must reject with
// 400: the certification c-2-6 list and the other shapes the brief names.
// The value is a fragment the client-facing message must contain.
var invalidSingleBodies = []struct {
	name, body, msg string
}{
	{"empty body", ``, "empty"},
	{"whitespace body", " \n\t", "empty"},
	{"malformed JSON", `{"subject":{"type":"user","id":"alice"},`, "malformed JSON"},
	{"malformed JSON bad token", `{"subject":}`, "malformed JSON"},
	{"trailing data", rule1 + `{}`, "malformed JSON"},
	{"trailing garbage", rule1 + `x`, "malformed JSON"},
	{"top-level array", `[` + rule1 + `]`, "JSON object"},
	{"top-level string", `"hello"`, "JSON object"},
	{"top-level null", `null`, "JSON object"},
	{"top-level number", `42`, "JSON object"},
	{"missing subject", `{"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject is required"},
	{"null subject", `{"subject":null,"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject is required"},
	{"missing action", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"record-1"}}`, "action is required"},
	{"missing resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"}}`, "resource is required"},
	{"subject missing type", `{"subject":{"id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject.type"},
	{"subject missing id", `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject.id"},
	{"subject empty id", `{"subject":{"type":"user","id":""},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject.id"},
	{"subject numeric id", `{"subject":{"type":"user","id":101},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject.id must be a string"},
	{"subject is a string", `{"subject":"alice","action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject must be an object"},
	{"subject is an array", `{"subject":["alice"],"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject must be an object"},
	{"action empty object", `{"subject":{"type":"user","id":"alice"},"action":{},"resource":{"type":"record","id":"record-1"}}`, "action.name"},
	{"action name number", `{"subject":{"type":"user","id":"alice"},"action":{"name":123},"resource":{"type":"record","id":"record-1"}}`, "action.name must be a string"},
	{"action is a string", `{"subject":{"type":"user","id":"alice"},"action":"read","resource":{"type":"record","id":"record-1"}}`, "action must be an object"},
	{"resource missing type", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"id":"record-1"}}`, "resource.type"},
	{"resource missing id", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"}}`, "resource.id"},
	{"resource is a string", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":"record-1"}`, "resource must be an object"},
	{"subject properties not object", `{"subject":{"type":"user","id":"alice","properties":[1]},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "subject.properties must be an object"},
	{"action properties not object", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read","properties":"x"},"resource":{"type":"record","id":"record-1"}}`, "action.properties must be an object"},
	{"resource properties not object", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1","properties":true}}`, "resource.properties must be an object"},
	{"context not object", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":"now"}`, "context must be an object"},
}

func TestDecodeEvaluationInvalid(t *testing.T) {
	for _, tt := range invalidSingleBodies {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvaluation([]byte(tt.body))
			assertRequestError(t, err, tt.msg)
		})
	}
}

// assertRequestError checks that err is a *RequestError whose one-line
// message contains want.
func assertRequestError(t *testing.T, err error, want string) {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want *RequestError", err, err)
	}
	if !strings.Contains(re.Message, want) {
		t.Errorf("message %q does not contain %q", re.Message, want)
	}
	if strings.ContainsAny(re.Message, "\r\n") {
		t.Errorf("message %q is not one line", re.Message)
	}
}
